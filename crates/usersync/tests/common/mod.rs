//! Set-up shared by the CLI's end-to-end tests: a config file pointing at the emulators, and
//! the two emulators with a small seeded tenant.

use std::path::Path;
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};
use usersync_emulators::graph::{self, DirectorySeed, GraphConfig, GraphEmulator};

/// Writes `usersync.toml` (and its secret files) in `dir` for one Jira target; `policy_extra`
/// is appended to the target's `[target.sync.policy]` table.
pub fn write_config(
    dir: &Path,
    graph: &GraphEmulator,
    jira: &AtlassianEmulator,
    policy_extra: &str,
) {
    std::fs::write(dir.join("secret"), graph::DEFAULT_CLIENT_SECRET).unwrap();
    std::fs::write(dir.join("pat"), "emulator-pat").unwrap();
    let cfg = format!(
        r#"
data_dir = "data"
[source]
tenant_id = "{}"
client_id = "{}"
client_secret = {{ file = "{d}/secret" }}
login_url = "{}"
graph_url = "{}"
allow_insecure_http = true
[[target]]
name = "jira"
product = "jira"
base_url = "{}"
auth = "bearer"
secret = {{ file = "{d}/pat" }}
allow_insecure_http = true
[target.sync.scope]
flatten_nested = true
[target.sync.policy]
access_groups = ["jira-software-users"]
{policy_extra}
"#,
        graph::DEFAULT_TENANT_ID,
        graph::DEFAULT_CLIENT_ID,
        graph.login_url(),
        graph.graph_url(),
        jira.base_url(),
        d = dir.display()
    );
    std::fs::write(dir.join("usersync.toml"), cfg).unwrap();
}

/// A Graph tenant of `users` users (5 groups, two memberships a user) and a Jira with two
/// seeded accounts.
pub async fn emulators(users: u32) -> (GraphEmulator, AtlassianEmulator) {
    let g = GraphConfig {
        directory: DirectorySeed::Custom {
            users,
            groups: 5,
            memberships: users * 2,
            seed: 7,
        },
        ..GraphConfig::default()
    };
    let graph = GraphEmulator::start(g).await.unwrap();
    let jira = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira).with_seed_users(2))
        .await
        .unwrap();
    (graph, jira)
}
