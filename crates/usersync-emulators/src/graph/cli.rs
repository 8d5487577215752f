//! `usersync-emulators graph …`: runs the Graph emulator as a process and prints one JSON line
//! with its URLs (`{"login_url":…,"graph_url":…,"token_url":…,"tenant_id":…,"client_id":…,
//! "client_secret":…,"ca_pem":…}`) for test harnesses.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SECRET_KEY_ID,
    DEFAULT_TENANT_DOMAIN, DEFAULT_TENANT_ID, DirectorySeed, FaultConfig, GraphConfig,
    GraphEmulator, Secret, TenantSize, ThrottleBudget,
};

/// Command-line options of the Graph emulator.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Generated tenant size: tiny|s|m|l.
    #[arg(long, default_value = "tiny")]
    pub size: String,
    /// Explicit user count (overrides --size; use with --groups/--memberships).
    #[arg(long)]
    pub users: Option<u32>,
    /// Explicit group count (with --users).
    #[arg(long)]
    pub groups: Option<u32>,
    /// Explicit membership count (with --users).
    #[arg(long)]
    pub memberships: Option<u32>,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Load the directory from a JSON fixture instead (see `model::Fixture`).
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Serve HTTPS with a generated test CA.
    #[arg(long)]
    pub tls: bool,
    /// Where to write the CA certificate PEM (with --tls); default: a temp file.
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
    /// Tenant id.
    #[arg(long, default_value = DEFAULT_TENANT_ID)]
    pub tenant_id: String,
    /// Tenant verified domain.
    #[arg(long, default_value = DEFAULT_TENANT_DOMAIN)]
    pub tenant_domain: String,
    /// Client id of the app.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// Client secret of the app.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    pub client_secret: String,
    /// Granted application permissions (comma-separated).
    #[arg(
        long,
        default_value = "Directory.Read.All,User.Read.All,Application.Read.All"
    )]
    pub roles: String,
    /// Simulate missing admin consent (tokens without `roles`).
    #[arg(long)]
    pub no_consent: bool,
    /// Certificate PEM file(s) registered for client assertions.
    #[arg(long)]
    pub cert: Vec<PathBuf>,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_lifetime: u64,
    /// Fixed latency per request (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability of 429 per Graph request.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Probability of 503 per Graph request.
    #[arg(long, default_value_t = 0.0)]
    pub unavailable_rate: f64,
    /// Probability of 504 per Graph request.
    #[arg(long, default_value_t = 0.0)]
    pub gateway_timeout_rate: f64,
    /// Retry-After seconds for injected faults.
    #[arg(long, default_value_t = 1.0)]
    pub retry_after: f64,
    /// ResourceUnit budget per window (e.g. 3500 for Graph's small-tenant identity limit).
    #[arg(long)]
    pub budget_units: Option<u32>,
    /// Budget window seconds.
    #[arg(long, default_value_t = 10.0)]
    pub budget_window: f64,
    /// Count each request as one unit (a plain requests-per-window budget).
    #[arg(long)]
    pub budget_per_request: bool,
    /// Fault RNG seed.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Objects per delta page.
    #[arg(long, default_value_t = 100)]
    pub delta_page_size: usize,
    /// `members@delta` entries per page.
    #[arg(long, default_value_t = 500)]
    pub delta_members_per_page: usize,
}

/// Runs until Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let directory = if let Some(f) = &args.fixture {
        DirectorySeed::FixtureFile(f.clone())
    } else if let Some(users) = args.users {
        DirectorySeed::Custom {
            users,
            groups: args.groups.unwrap_or(users / 10),
            memberships: args.memberships.unwrap_or(users * 5),
            seed: args.seed,
        }
    } else {
        DirectorySeed::Generated {
            size: args.size.parse::<TenantSize>()?,
            seed: args.seed,
        }
    };
    let certificates = args
        .cert
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let app = AppRegistration {
        client_id: args.client_id.clone(),
        display_name: "usersync".into(),
        secrets: vec![Secret {
            key_id: DEFAULT_SECRET_KEY_ID.into(),
            value: args.client_secret.clone(),
            end: 4_102_444_800,
        }],
        certificates,
        granted_roles: args
            .roles
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        admin_consent: !args.no_consent,
    };
    let ca_out = if args.tls {
        Some(args.ca_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "usersync-graph-emulator-ca-{}.pem",
                std::process::id()
            ))
        }))
    } else {
        None
    };
    let cfg = GraphConfig {
        tenant_id: args.tenant_id.clone(),
        tenant_domain: args.tenant_domain.clone(),
        apps: vec![app],
        directory,
        faults: FaultConfig {
            seed: args.fault_seed,
            throttle_rate: args.throttle_rate,
            unavailable_rate: args.unavailable_rate,
            gateway_timeout_rate: args.gateway_timeout_rate,
            retry_after_secs: args.retry_after,
            budget: args.budget_units.map(|u| ThrottleBudget {
                resource_units: u,
                window_secs: args.budget_window,
                per_request: args.budget_per_request,
            }),
            ..FaultConfig::default()
        },
        latency: Duration::from_millis(args.latency_ms),
        tls: args.tls,
        ca_out: ca_out.clone(),
        token_lifetime_secs: args.token_lifetime,
        delta_page_size: args.delta_page_size,
        delta_members_per_page: args.delta_members_per_page,
        bind: Some(args.bind),
        ..GraphConfig::default()
    };
    let started = std::time::Instant::now();
    let emu = GraphEmulator::start(cfg).await?;
    let t = emu.tenant();
    let line = serde_json::json!({
        "login_url": emu.login_url(),
        "graph_url": emu.graph_url(),
        "token_url": emu.token_url(),
        "control_url": format!("{}/_emulator", emu.login_url()),
        "tenant_id": args.tenant_id,
        "tenant_domain": args.tenant_domain,
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "ca_pem": ca_out.map(|p| p.display().to_string()),
        "users": t.user_count(),
        "groups": t.group_count(),
        "startup_ms": started.elapsed().as_millis() as u64,
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
