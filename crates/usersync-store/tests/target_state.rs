//! The stored target state: written whole by a full read, patched row by row, marked clean or
//! not around an apply, and isolated per pair.

use std::collections::BTreeSet;
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot};
use usersync_core::plan::{OpKind, OpOutcome, Operation};
use usersync_core::target_state::{StoredMeta, TargetState};
use usersync_store::Store;

fn acct(name: &str, key: Option<&str>, groups: &[&str]) -> TargetAccount {
    TargetAccount {
        username: name.into(),
        key: key.map(str::to_string),
        display_name: format!("{name} name"),
        email: format!("{name}@example.com"),
        active: true,
        groups: groups
            .iter()
            .map(|g| g.to_string())
            .collect::<BTreeSet<_>>(),
    }
}

fn sorted(mut s: TargetSnapshot) -> TargetSnapshot {
    s.accounts.sort_by(|a, b| a.username.cmp(&b.username));
    s.groups.sort_by(|a, b| a.name.cmp(&b.name));
    s
}

#[tokio::test]
async fn full_write_patch_and_clean_flag() {
    let store = Store::open_in_memory().await.unwrap();
    assert!(store.target_state("s->jira").await.unwrap().is_none());
    let snap = TargetSnapshot {
        accounts: vec![
            acct("alice", Some("K1"), &["Devs", "jira-users"]),
            acct("Bob", None, &["Devs"]),
        ],
        groups: vec![
            TargetGroup {
                name: "Devs".into(),
            },
            TargetGroup {
                name: "jira-users".into(),
            },
        ],
    };
    let meta = StoredMeta {
        full_read_ms: 42,
        fingerprint: "fp".into(),
        clean: true,
    };
    store
        .replace_target_state("s->jira", &snap, &meta)
        .await
        .unwrap();
    let (m, got) = store.target_state("s->jira").await.unwrap().unwrap();
    assert_eq!(m, meta);
    assert_eq!(sorted(got.clone()), sorted(snap.clone()));
    // Another pair sees nothing.
    assert!(store.target_state("s->wiki").await.unwrap().is_none());

    // Patch: bob leaves Devs and is renamed, alice is deleted, a group is created.
    let mut st = TargetState::from_snapshot(got);
    let op = |kind| Operation {
        seq: 0,
        kind,
        reason: String::new(),
    };
    let ok = OpOutcome::Applied { target_key: None };
    st.apply(
        &op(OpKind::RemoveMember {
            group: "devs".into(),
            username: "bob".into(),
        }),
        &ok,
    );
    st.apply(
        &op(OpKind::RenameUser {
            source_id: "b".into(),
            from: "bob".into(),
            to: "robert".into(),
        }),
        &ok,
    );
    st.apply(
        &op(OpKind::DeleteUser {
            source_id: "a".into(),
            username: "alice".into(),
            target_key: Some("K1".into()),
        }),
        &ok,
    );
    st.apply(
        &op(OpKind::CreateGroup {
            source_id: "g".into(),
            name: "Ops".into(),
        }),
        &ok,
    );
    let expected = st.snapshot();
    store
        .patch_target_state("s->jira", &st.take_changes())
        .await
        .unwrap();
    let (_, got) = store.target_state("s->jira").await.unwrap().unwrap();
    assert_eq!(sorted(got), sorted(expected));

    store
        .set_target_state_clean("s->jira", false)
        .await
        .unwrap();
    assert!(
        !store
            .target_state_meta("s->jira")
            .await
            .unwrap()
            .unwrap()
            .clean
    );
    store.clear_target_state("s->jira").await.unwrap();
    assert!(store.target_state_meta("s->jira").await.unwrap().is_none());
}
