//! Source read → plan, end to end: after changes in the tenant, the delta read fetches only the
//! changes and the planner produces exactly the expected operations.

use crate::common::{config, start};
use std::collections::BTreeSet;
use usersync_connectors::graph::GraphSource;
use usersync_core::config::SyncSettings;
use usersync_core::engine::{self, ApplyOptions};
use usersync_core::journal::MemoryJournal;
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{OpKind, Plan, PlanInput, plan};
use usersync_core::ports::SourceDirectory;
use usersync_core::testkit::{FakeTarget, full_capabilities};
use usersync_emulators::graph::{GraphConfig, UserFields};

fn plan_for(src: &SourceSnapshot, target: &FakeTarget, links: &LinkTable) -> Plan {
    let settings = SyncSettings::default();
    let caps = full_capabilities();
    plan(&PlanInput {
        source: src,
        target: &target.snapshot(),
        links,
        settings: &settings,
        capabilities: &caps,
        now_ms: 1_000,
    })
}

fn describe(p: &Plan) -> BTreeSet<String> {
    p.ops
        .iter()
        .map(|op| match &op.kind {
            OpKind::CreateUser { account, .. } => format!("create {}", account.username),
            OpKind::RenameUser { from, to, .. } => format!("rename {from} -> {to}"),
            OpKind::UpdateUser {
                username, changes, ..
            } => {
                let fields: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{:?}={}", c.field, c.after))
                    .collect();
                format!("update {username} {}", fields.join(","))
            }
            OpKind::DeactivateUser { username, .. } => format!("deactivate {username}"),
            OpKind::AddMembers { group, usernames } => {
                format!("add {} to {group}", usernames.join("+"))
            }
            OpKind::RemoveMember { group, username } => format!("remove {username} from {group}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_changes_produce_exactly_the_expected_plan() {
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    assert!(first.snapshot.complete);

    // Initial sync into an empty target.
    let target = FakeTarget::new(full_capabilities(), TargetSnapshot::default());
    let journal = MemoryJournal::new(LinkTable::default(), 1_000);
    let p = plan_for(&first.snapshot, &target, &journal.link_table());
    let report = engine::apply(&p, &target, &src, &journal, &ApplyOptions::default(), &()).await;
    assert_eq!(report.outcomes.failed, 0);
    assert!(
        plan_for(&first.snapshot, &target, &journal.link_table())
            .ops
            .is_empty()
    );

    // Pick four enabled members (not guests) that belong to at least one group.
    let in_group: BTreeSet<&String> = first
        .snapshot
        .groups
        .iter()
        .flat_map(|g| g.member_users.iter())
        .collect();
    let picks: Vec<_> = first
        .snapshot
        .users
        .iter()
        .filter(|u| u.enabled && !u.upn.contains("#EXT#") && in_group.contains(&u.id))
        .take(4)
        .collect();
    assert_eq!(picks.len(), 4, "tiny tenant has enough members");
    let (renamed, retitled, leaver, disabled) = (picks[0], picks[1], picks[2], picks[3]);
    let group = first
        .snapshot
        .groups
        .iter()
        .find(|g| !g.member_users.contains(&leaver.id))
        .unwrap();
    let leaver_groups: Vec<&str> = first
        .snapshot
        .groups
        .iter()
        .filter(|g| g.member_users.contains(&leaver.id))
        .map(|g| g.display_name.as_str())
        .collect();

    let t = emu.tenant();
    let new_upn = format!("Renamed.{}", renamed.upn);
    t.update_user(
        &renamed.id,
        UserFields {
            user_principal_name: Some(new_upn.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    t.update_user(
        &retitled.id,
        UserFields {
            display_name: Some("Dr. Changed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    t.delete_user(&leaver.id, true).unwrap();
    t.set_account_enabled(&disabled.id, false).unwrap();
    let hire_upn = format!("new.hire@{}", t.domain());
    let hire = t
        .add_user(UserFields {
            user_principal_name: Some(hire_upn.clone()),
            display_name: Some("New Hire".into()),
            mail: Some(hire_upn.clone()),
            account_enabled: Some(true),
            ..Default::default()
        })
        .unwrap();
    t.add_member(&group.id, &hire).unwrap();

    emu.reset_stats();
    let second = src.read(Some(first.next_state.clone())).await.unwrap();
    assert_eq!(second.stats.mode.to_string(), "delta");
    let stats = emu.stats();
    assert_eq!(stats.get("users.delta"), 1, "{stats:?}");
    assert_eq!(stats.get("groups.delta"), 1, "{stats:?}");
    assert_eq!(
        stats.get("users"),
        0,
        "no full listing on a delta run: {stats:?}"
    );
    assert_eq!(stats.get("groups"), 0, "{stats:?}");

    let p = plan_for(&second.snapshot, &target, &journal.link_table());
    let mut want: BTreeSet<String> = [
        format!("create {hire_upn}"),
        format!(
            "rename {} -> {}",
            renamed.upn.to_lowercase(),
            new_upn.to_lowercase()
        ),
        format!(
            "update {} DisplayName=Dr. Changed",
            retitled.upn.to_lowercase()
        ),
        format!("deactivate {}", leaver.upn.to_lowercase()),
        format!("deactivate {}", disabled.upn.to_lowercase()),
        format!("add {hire_upn} to {}", group.display_name),
    ]
    .into_iter()
    .collect();
    for g in leaver_groups {
        want.insert(format!("remove {} from {g}", leaver.upn.to_lowercase()));
    }
    assert_eq!(describe(&p), want);
}
