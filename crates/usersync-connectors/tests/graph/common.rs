//! Shared setup: an emulator and a source configuration pointing at it.

use secrecy::SecretString;
use std::collections::BTreeSet;
use std::time::Duration;
use usersync_connectors::graph::{GraphCloud, GraphCredential, GraphSourceConfig};
use usersync_connectors::http::RetryPolicy;
use usersync_core::model::SourceSnapshot;
use usersync_emulators::graph::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, GraphConfig, GraphEmulator,
};

/// Starts an emulator.
pub async fn start(cfg: GraphConfig) -> GraphEmulator {
    GraphEmulator::start(cfg).await.expect("emulator starts")
}

/// Short waits so fault tests run fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
        max_total_wait: Duration::from_secs(60),
        ..RetryPolicy::default()
    }
}

/// A source configuration for the emulator's default tenant and app.
pub fn config(emu: &GraphEmulator) -> GraphSourceConfig {
    let mut cfg = GraphSourceConfig::new(
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        GraphCredential::Secret(SecretString::from(DEFAULT_CLIENT_SECRET)),
    );
    cfg.cloud = GraphCloud::Custom {
        login_url: emu.login_url(),
        graph_url: emu.graph_url(),
        scope: None,
    };
    cfg.retry = fast_retry();
    cfg
}

/// Total direct memberships (users and groups) in a snapshot.
pub fn membership_count(s: &SourceSnapshot) -> usize {
    s.groups
        .iter()
        .map(|g| g.member_users.len() + g.member_groups.len())
        .sum()
}

/// Checks the snapshot equals the emulator's directory (ids and memberships).
pub fn assert_matches_tenant(s: &SourceSnapshot, emu: &GraphEmulator) {
    let t = emu.tenant();
    let users: BTreeSet<String> = s.users.iter().map(|u| u.id.clone()).collect();
    let want: BTreeSet<String> = t.user_ids().into_iter().collect();
    assert_eq!(users.len(), want.len(), "user count");
    assert_eq!(users, want, "user ids");
    let groups: BTreeSet<String> = s.groups.iter().map(|g| g.id.clone()).collect();
    let want: BTreeSet<String> = t.group_ids().into_iter().collect();
    assert_eq!(groups, want, "group ids");
    for g in &s.groups {
        let mut got: BTreeSet<String> = g.member_users.clone();
        got.extend(g.member_groups.iter().cloned());
        let want: BTreeSet<String> = t.group_member_ids(&g.id).unwrap().into_iter().collect();
        assert_eq!(got, want, "members of {}", g.display_name);
    }
    assert_eq!(
        membership_count(s),
        t.membership_count(),
        "membership count"
    );
}
