//! `usersync demo`: the whole product on one machine with no tenant and no Atlassian server.
//! Starts the Graph emulator with a generated tenant and the Jira emulator, writes a real
//! config file (secrets in files, as in production), then runs the same code path as
//! `simulate` and `sync`, changes a few users in the emulated tenant and shows that the next
//! run reads and applies only those changes.
#![allow(clippy::print_stdout)]

use crate::cli::{DemoArgs, Format};
use crate::exit::Code;
use crate::runner::{self, RunOptions, TargetRun};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};
use usersync_emulators::graph::{self, DirectorySeed, GraphConfig, GraphEmulator, UserFields};

/// The demo's state and config, under the system temporary directory so running the demo in a
/// checkout leaves nothing behind; it survives the run so `usersync -c …/usersync.toml runs`
/// (printed at the end) still works.
const DEMO_DIR: &str = "usersync-demo";

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn demo_config(dir: &Path, graph: &GraphEmulator, jira: &AtlassianEmulator) -> String {
    format!(
        r#"# Written by `usersync demo`: Entra ID and Jira are the bundled emulators.
data_dir = "data"

[source]
name = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = {{ file = "{dir}/entra-secret" }}
login_url = "{login}"
graph_url = "{graph}"
sync_photos = true
# The emulators speak plain HTTP on 127.0.0.1; never set this for real services.
allow_insecure_http = true

[[target]]
name = "jira"
product = "jira"
base_url = "{jira}"
auth = "bearer"
secret = {{ file = "{dir}/jira-token" }}
schedule = "0 0 * * * ?"
allow_insecure_http = true

[target.sync.scope]
flatten_nested = true

[target.sync.policy]
access_groups = ["jira-software-users"]
protected_accounts = ["admin"]
"#,
        tenant = graph::DEFAULT_TENANT_ID,
        client = graph::DEFAULT_CLIENT_ID,
        dir = dir.display(),
        login = graph.login_url(),
        graph = graph.graph_url(),
        jira = jira.base_url(),
    )
}

fn headline(title: &str) {
    println!("\n━━━ {title} ━━━");
}

fn show(runs: &[TargetRun], format: Format, graph: &GraphEmulator, jira: &AtlassianEmulator) {
    crate::output::run_reports(runs, format);
    let g = graph.stats();
    let j = jira.stats();
    println!(
        "requests: Graph {} (token {}, users delta {}, groups delta {}; photo look-ups {} inside $batch), Jira {} ({} writes)",
        g.total(),
        g.get("token"),
        g.get("users.delta"),
        g.get("groups.delta"),
        g.get("batch.item"),
        j.total(),
        j.writes()
    );
    graph.reset_stats();
    jira.reset_stats();
}

/// One run; the demo stops at the first target that fails.
async fn collect(
    cfg: &crate::config::FileConfig,
    opts: &RunOptions,
    format: Format,
) -> anyhow::Result<Vec<TargetRun>> {
    let mut c = runner::run_collect(cfg, opts, format == Format::Text).await?;
    match c.failures.pop() {
        Some(e) => Err(e),
        None => Ok(c.runs),
    }
}

/// Runs the demo.
pub async fn run(a: DemoArgs, format: Format) -> anyhow::Result<Code> {
    let users = a.users.clamp(10, 100_000) as u32;
    let gcfg = GraphConfig {
        directory: DirectorySeed::Custom {
            users,
            groups: (users / 10).max(3),
            memberships: users * 3,
            seed: 42,
        },
        ..GraphConfig::default()
    };
    let graph = GraphEmulator::start(gcfg)
        .await
        .context("starting the Graph emulator")?;
    let jira = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira).with_seed_users(3))
        .await
        .context("starting the Jira emulator")?;
    println!(
        "Entra ID / Graph emulator: {} (tenant {})",
        graph.graph_url(),
        graph::DEFAULT_TENANT_ID
    );
    println!(
        "Jira emulator:             {} (3 existing accounts usersync does not manage, plus admin)",
        jira.base_url()
    );

    let dir: PathBuf = std::env::temp_dir().join(DEMO_DIR);
    if dir.join("data").exists() {
        std::fs::remove_dir_all(dir.join("data")).context("clearing the previous demo's state")?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(&dir.join("entra-secret"), graph::DEFAULT_CLIENT_SECRET)?;
    write_private(&dir.join("jira-token"), "emulator-pat")?;
    let cfg_path = dir.join("usersync.toml");
    std::fs::write(&cfg_path, demo_config(&dir, &graph, &jira))?;
    println!("config:                    {}", cfg_path.display());
    let cfg = crate::config::load(&cfg_path)?;

    headline("1. Test Connection");
    runner::test_connection(&cfg, None, format).await?;
    graph.reset_stats();
    jira.reset_stats();

    headline("2. Simulated sync (nothing is written)");
    let sim = RunOptions {
        apply: false,
        ..Default::default()
    };
    let runs = collect(&cfg, &sim, format).await?;
    show(&runs, format, &graph, &jira);

    headline("3. Full sync");
    let sync = RunOptions {
        apply: true,
        ..Default::default()
    };
    let runs = collect(&cfg, &sync, format).await?;
    show(&runs, format, &graph, &jira);
    let mut worst = runs.iter().map(|r| r.code).max().unwrap_or(Code::Success);

    headline(
        "4. Changes in Entra ID: a rename, a new display name, a leaver, a disabled user, a new hire",
    );
    let t = graph.tenant();
    let ids = t.user_ids();
    let pick = |i: usize| {
        ids.get(i * 7 % ids.len().max(1))
            .cloned()
            .unwrap_or_default()
    };
    let (renamed, retitled, leaver, disabled) = (pick(1), pick(2), pick(3), pick(4));
    let old_upn = t.user_upn(&renamed).unwrap_or_default();
    let new_upn = format!("renamed.{old_upn}");
    t.update_user(
        &renamed,
        UserFields {
            user_principal_name: Some(new_upn.clone()),
            ..Default::default()
        },
    )?;
    t.update_user(
        &retitled,
        UserFields {
            display_name: Some("Dr. Demo Person".into()),
            ..Default::default()
        },
    )?;
    t.delete_user(&leaver, false)?;
    t.set_account_enabled(&disabled, false)?;
    let hire = t.add_user(UserFields {
        user_principal_name: Some(format!("new.hire@{}", t.domain())),
        display_name: Some("New Hire".into()),
        given_name: Some("New".into()),
        surname: Some("Hire".into()),
        mail: Some(format!("new.hire@{}", t.domain())),
        account_enabled: Some(true),
        ..Default::default()
    })?;
    if let Some(g) = t.group_ids().first() {
        t.add_member(g, &hire)?;
    }
    println!(
        "renamed {old_upn} → {new_upn}; changed a display name; deleted one user; disabled one; hired new.hire"
    );

    headline("5. Incremental sync: Graph delta reads only the changes");
    let runs = collect(&cfg, &sync, format).await?;
    show(&runs, format, &graph, &jira);
    worst = worst.max(runs.iter().map(|r| r.code).max().unwrap_or(Code::Success));

    headline("6. No changes: nothing to do");
    let runs = collect(&cfg, &sync, format).await?;
    show(&runs, format, &graph, &jira);
    worst = worst.max(runs.iter().map(|r| r.code).max().unwrap_or(Code::Success));

    println!("\nRun history: usersync -c {} runs", cfg_path.display());
    if a.keep_running {
        println!(
            "Emulators keep running (Graph {}, Jira {}); Ctrl-C to stop.",
            graph.graph_url(),
            jira.base_url()
        );
        tokio::signal::ctrl_c().await?;
    }
    graph.shutdown().await;
    jira.shutdown().await;
    Ok(worst)
}
