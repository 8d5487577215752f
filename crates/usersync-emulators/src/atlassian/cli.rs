//! `usersync-emulators atlassian`: serves one product until Ctrl-C and prints
//! `{"product":"jira","base_url":"http://127.0.0.1:PORT/jira"}` on stdout once listening.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::{AtlassianConfig, AtlassianEmulator, FailRule, Product, RateLimit};

/// Command-line arguments of the Atlassian emulator.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Product to emulate.
    #[arg(long, value_enum)]
    pub product: Product,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Context path (default `/<product>`; pass an empty string for none).
    #[arg(long)]
    pub context_path: Option<String>,
    /// Administrator user name (Basic auth).
    #[arg(long, default_value = "admin")]
    pub admin_user: String,
    /// Administrator password.
    #[arg(long, default_value = "admin")]
    pub admin_password: String,
    /// Personal access token accepted as `Authorization: Bearer` for the administrator.
    #[arg(long, default_value = "emulator-pat")]
    pub pat: String,
    /// Crowd application name.
    #[arg(long, default_value = "usersync")]
    pub crowd_app_name: String,
    /// Crowd application password.
    #[arg(long, default_value = "usersync")]
    pub crowd_app_password: String,
    /// Remote addresses the Crowd application may call from (repeatable; default 127.0.0.1, ::1).
    #[arg(long)]
    pub crowd_allowed_address: Vec<std::net::IpAddr>,
    /// Number of pre-existing unmanaged accounts (`user0001`..) to seed.
    #[arg(long, default_value_t = 0)]
    pub seed_users: usize,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Token-bucket rate limit `CAPACITY/FILL/INTERVAL_SECS` (or `N` = `N/N/1`).
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Licence seats (Confluence 402 / Bitbucket 403 when full).
    #[arg(long)]
    pub licence_seats: Option<usize>,
    /// Answer every request with 503.
    #[arg(long)]
    pub maintenance: bool,
    /// Answer the first N requests with 429.
    #[arg(long, default_value_t = 0)]
    pub throttle_first: u32,
    /// `Retry-After` seconds for injected 429/503.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Fail the Nth request (1-based) with `--fail-status`.
    #[arg(long)]
    pub fail_nth: Option<u64>,
    /// Status used by `--fail-nth`.
    #[arg(long, default_value_t = 500)]
    pub fail_status: u16,
    /// `NAME:STATUS` — every write creating or changing user NAME fails with STATUS.
    #[arg(long)]
    pub fail_user: Vec<String>,
}

/// Runs the emulator until Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = AtlassianConfig::new(args.product).with_seed_users(args.seed_users);
    if let Some(c) = args.context_path {
        cfg.context_path = c;
    }
    cfg.admin_user = args.admin_user;
    cfg.admin_password = args.admin_password.clone();
    for s in &mut cfg.seed {
        if s.name == "admin" {
            s.name = cfg.admin_user.clone();
            s.password = args.admin_password.clone();
        }
    }
    cfg.pat = Some(args.pat);
    cfg.crowd_app = (args.crowd_app_name, args.crowd_app_password);
    if !args.crowd_allowed_address.is_empty() {
        cfg.crowd_allowed_addresses = args.crowd_allowed_address;
    }
    cfg.latency = Duration::from_millis(args.latency_ms);
    cfg.rate_limit = args
        .rate_limit
        .as_deref()
        .map(RateLimit::parse)
        .transpose()?;
    cfg.licence_seats = args.licence_seats;
    cfg.faults.maintenance = args.maintenance;
    cfg.faults.throttle_next = args.throttle_first;
    cfg.faults.retry_after_secs = args.retry_after_secs;
    if let Some(n) = args.fail_nth {
        cfg.faults
            .fail_rules
            .push(FailRule::nth_request(n, args.fail_status));
    }
    for f in &args.fail_user {
        let (name, status) = f
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--fail-user expects NAME:STATUS"))?;
        cfg.faults.fail_users.insert(
            name.to_lowercase(),
            (status.parse()?, format!("Injected failure for user {name}")),
        );
    }
    let product = args.product;
    let emu = AtlassianEmulator::start_on(cfg, args.bind).await?;
    let line = serde_json::json!({"product": product, "base_url": emu.base_url()});
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
