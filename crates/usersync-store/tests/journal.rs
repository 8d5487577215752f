//! The journal's link rules, operation by operation, against a real (in-memory) store, and the
//! per-operation records it leaves in the run.

use usersync_core::link::{GroupLink, LinkTable, UserLink};
use usersync_core::plan::{AccountSpec, OpKind, OpOutcome, Operation};
use usersync_core::ports::{ApplyJournal, ErrorKind};
use usersync_store::{OpStatus, RunMode, Store};

const PAIR: &str = "entra-jira";
const NOW: i64 = 1_700_000_000_000;

fn op(seq: u32, kind: OpKind) -> Operation {
    Operation {
        seq,
        kind,
        reason: "test".into(),
    }
}

fn create(seq: u32, id: &str, username: &str) -> Operation {
    op(
        seq,
        OpKind::CreateUser {
            source_id: id.into(),
            account: AccountSpec {
                username: username.into(),
                display_name: username.to_uppercase(),
                email: format!("{username}@example.com"),
            },
        },
    )
}

fn applied(key: Option<&str>) -> OpOutcome {
    OpOutcome::Applied {
        target_key: key.map(str::to_string),
    }
}

fn failed() -> OpOutcome {
    OpOutcome::Failed {
        kind: ErrorKind::Conflict,
        message: "nope".into(),
    }
}

fn refused() -> OpOutcome {
    OpOutcome::Failed {
        kind: ErrorKind::Invalid,
        message: "invalid".into(),
    }
}

fn user(id: &str, username: &str, key: Option<&str>) -> UserLink {
    UserLink {
        source_id: id.into(),
        username: username.into(),
        target_key: key.map(str::to_string),
        pending_username: None,
        deactivated_at_ms: None,
        photo_tag: None,
    }
}

async fn setup() -> (Store, usersync_store::StoreJournal, i64) {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, NOW).await.unwrap();
    let journal = store.journal(PAIR, run, NOW);
    (store, journal, run)
}

async fn step(j: &usersync_store::StoreJournal, op: &Operation, outcome: OpOutcome) {
    j.before(op).await.unwrap();
    j.after(op, &outcome).await.unwrap();
}

#[tokio::test]
async fn create_user_pending_then_confirmed_or_dropped() {
    let (store, j, run) = setup().await;
    let ok = create(0, "s1", "alice");
    j.before(&ok).await.unwrap();
    let links = j.links().await.unwrap();
    let pending = &links.users["s1"];
    assert_eq!(pending.username, "alice");
    assert_eq!(pending.pending_username.as_deref(), Some("alice"));
    j.after(&ok, &applied(Some("JIRAUSER1"))).await.unwrap();
    assert_eq!(
        j.links().await.unwrap().users["s1"],
        user("s1", "alice", Some("JIRAUSER1"))
    );

    let bad = create(1, "s2", "bob");
    step(&j, &bad, refused()).await;
    let links = store.links(PAIR).await.unwrap();
    assert!(!links.users.contains_key("s2"));
    assert_eq!(links.users.len(), 1);

    // A conflict (the account exists, e.g. from an earlier POST whose answer was lost) keeps
    // the pending link, so the next plan confirms the account instead of leaving it unmanaged.
    let exists = create(2, "s3", "carl");
    step(&j, &exists, failed()).await;
    let links = store.links(PAIR).await.unwrap();
    assert_eq!(links.users["s3"].pending_username.as_deref(), Some("carl"));

    // Links are per pair.
    assert!(store.links("other-pair").await.unwrap().users.is_empty());

    let rec = store.run(run).await.unwrap().unwrap();
    assert_eq!(rec.ops.len(), 3);
    assert_eq!(rec.ops[0].seq, 0);
    assert_eq!(rec.ops[0].op, ok);
    assert_eq!(rec.ops[0].status, OpStatus::Applied);
    assert_eq!(rec.ops[0].outcome, Some(applied(Some("JIRAUSER1"))));
    assert!(rec.ops[0].started_ms.is_some() && rec.ops[0].finished_ms.is_some());
    assert_eq!(rec.ops[1].status, OpStatus::Failed);
    assert_eq!(rec.ops[1].outcome, Some(refused()));
    assert_eq!(rec.ops[2].outcome, Some(failed()));
}

#[tokio::test]
async fn rename_user_applied_and_failed() {
    let (store, j, _) = setup().await;
    step(&j, &create(0, "s1", "alice"), applied(Some("K1"))).await;
    step(&j, &create(1, "s2", "bob"), applied(None)).await;

    let r1 = op(
        2,
        OpKind::RenameUser {
            source_id: "s1".into(),
            from: "alice".into(),
            to: "alice.w".into(),
        },
    );
    j.before(&r1).await.unwrap();
    let l = &store.links(PAIR).await.unwrap().users["s1"];
    assert_eq!(
        (l.username.as_str(), l.pending_username.as_deref()),
        ("alice", Some("alice.w"))
    );
    j.after(&r1, &applied(None)).await.unwrap();
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"],
        user("s1", "alice.w", Some("K1"))
    );

    let r2 = op(
        3,
        OpKind::RenameUser {
            source_id: "s2".into(),
            from: "bob".into(),
            to: "robert".into(),
        },
    );
    step(&j, &r2, failed()).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s2"],
        user("s2", "bob", None)
    );
}

#[tokio::test]
async fn adopt_deactivate_reactivate_avatar_delete() {
    let (store, j, _) = setup().await;
    let adopt = op(
        0,
        OpKind::AdoptUser {
            source_id: "s1".into(),
            username: "carol".into(),
            target_key: Some("K9".into()),
        },
    );
    // Adoption writes nothing to the target; a failed adoption links nothing.
    step(&j, &adopt, failed()).await;
    assert!(store.links(PAIR).await.unwrap().users.is_empty());
    j.after(&adopt, &applied(None)).await.unwrap();
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"],
        user("s1", "carol", Some("K9"))
    );

    let deact = op(
        1,
        OpKind::DeactivateUser {
            source_id: "s1".into(),
            username: "carol".into(),
            target_key: None,
        },
    );
    step(&j, &deact, failed()).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"].deactivated_at_ms,
        None
    );
    step(&j, &deact, applied(None)).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"].deactivated_at_ms,
        Some(NOW)
    );

    let react = op(
        2,
        OpKind::ReactivateUser {
            source_id: "s1".into(),
            username: "carol".into(),
            target_key: None,
        },
    );
    step(&j, &react, applied(None)).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"].deactivated_at_ms,
        None
    );

    let avatar = op(
        3,
        OpKind::SetAvatar {
            source_id: "s1".into(),
            username: "carol".into(),
            photo_tag: "etag-1".into(),
        },
    );
    step(&j, &avatar, failed()).await;
    assert_eq!(store.links(PAIR).await.unwrap().users["s1"].photo_tag, None);
    step(&j, &avatar, applied(None)).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"]
            .photo_tag
            .as_deref(),
        Some("etag-1")
    );

    // Updates and memberships leave links alone.
    let upd = op(
        4,
        OpKind::UpdateUser {
            source_id: "s1".into(),
            username: "carol".into(),
            changes: vec![],
            target_key: None,
        },
    );
    let add = op(
        5,
        OpKind::AddMembers {
            group: "g".into(),
            usernames: vec!["carol".into()],
        },
    );
    let rm = op(
        6,
        OpKind::RemoveMember {
            group: "g".into(),
            username: "carol".into(),
        },
    );
    let snapshot = store.links(PAIR).await.unwrap();
    for o in [&upd, &add, &rm] {
        step(&j, o, applied(None)).await;
    }
    assert_eq!(store.links(PAIR).await.unwrap(), snapshot);

    let del = op(
        7,
        OpKind::DeleteUser {
            source_id: "s1".into(),
            username: "carol".into(),
            target_key: None,
        },
    );
    step(&j, &del, failed()).await;
    assert!(store.links(PAIR).await.unwrap().users.contains_key("s1"));
    step(&j, &del, applied(None)).await;
    assert_eq!(store.links(PAIR).await.unwrap(), LinkTable::default());
}

#[tokio::test]
async fn groups_create_and_delete() {
    let (store, j, _) = setup().await;
    let cg = op(
        0,
        OpKind::CreateGroup {
            source_id: "g1".into(),
            name: "Team A".into(),
        },
    );
    j.before(&cg).await.unwrap();
    let g = GroupLink {
        source_id: "g1".into(),
        name: "Team A".into(),
        pending: true,
    };
    assert_eq!(store.links(PAIR).await.unwrap().groups["g1"], g);
    j.after(&cg, &applied(None)).await.unwrap();
    assert_eq!(
        store.links(PAIR).await.unwrap().groups["g1"],
        GroupLink {
            pending: false,
            ..g.clone()
        }
    );

    let cg2 = op(
        1,
        OpKind::CreateGroup {
            source_id: "g2".into(),
            name: "Team B".into(),
        },
    );
    step(&j, &cg2, refused()).await;
    assert!(!store.links(PAIR).await.unwrap().groups.contains_key("g2"));
    // A conflict: the group exists now; the pending link stays for the next plan to confirm.
    step(&j, &cg2, failed()).await;
    assert!(store.links(PAIR).await.unwrap().groups["g2"].pending);

    let dg = op(
        2,
        OpKind::DeleteGroup {
            source_id: "g1".into(),
            name: "Team A".into(),
        },
    );
    step(&j, &dg, failed()).await;
    assert!(store.links(PAIR).await.unwrap().groups.contains_key("g1"));
    step(&j, &dg, applied(None)).await;
    assert_eq!(
        store
            .links(PAIR)
            .await
            .unwrap()
            .groups
            .keys()
            .collect::<Vec<_>>(),
        ["g2"]
    );
}

#[tokio::test]
async fn skipped_without_intent_keeps_an_earlier_pending_name() {
    let (store, j, _) = setup().await;
    step(&j, &create(0, "s1", "alice"), applied(None)).await;
    let rename = op(
        1,
        OpKind::RenameUser {
            source_id: "s1".into(),
            from: "alice".into(),
            to: "alice2".into(),
        },
    );
    j.before(&rename).await.unwrap(); // ... and the process dies.

    // Next run: the same rename is planned but skipped (e.g. a systemic error stopped the apply).
    let run2 = store.start_run(PAIR, RunMode::Sync, NOW + 1).await.unwrap();
    let j2 = store.journal(PAIR, run2, NOW + 1);
    let skipped = OpOutcome::Skipped {
        reason: "apply stopped".into(),
    };
    j2.after(&rename, &skipped).await.unwrap();
    assert_eq!(
        store.links(PAIR).await.unwrap().users["s1"]
            .pending_username
            .as_deref(),
        Some("alice2")
    );
    let rec = store.run(run2).await.unwrap().unwrap();
    assert_eq!(rec.ops[0].status, OpStatus::Skipped);

    // An ambiguous failure (timeout: the write may have happened) keeps the pending link, so
    // the next plan looks for the account instead of creating a second one.
    let c = create(2, "s2", "dave");
    j2.before(&c).await.unwrap();
    let timeout = OpOutcome::Failed {
        kind: ErrorKind::Unreachable,
        message: "timed out".into(),
    };
    j2.after(&c, &timeout).await.unwrap();
    let l = &store.links(PAIR).await.unwrap().users["s2"];
    assert_eq!(l.pending_username.as_deref(), Some("dave"));
}

#[tokio::test]
async fn adopt_group_links_confirmed() {
    let (store, j, _) = setup().await;
    let ag = op(
        0,
        OpKind::AdoptGroup {
            source_id: "g7".into(),
            name: "jira-users".into(),
        },
    );
    step(&j, &ag, applied(None)).await;
    assert_eq!(
        store.links(PAIR).await.unwrap().groups["g7"],
        GroupLink {
            source_id: "g7".into(),
            name: "jira-users".into(),
            pending: false
        }
    );
}

/// A takeover (a new source group adopts the managed group of a departed one) drops the old
/// group link, which lives under another source ID; otherwise the next run deletes the group
/// that was just taken over.
#[tokio::test]
async fn group_takeover_drops_the_old_link() {
    let (store, j, _) = setup().await;
    step(
        &j,
        &op(
            0,
            OpKind::CreateGroup {
                source_id: "g-old".into(),
                name: "Team A".into(),
            },
        ),
        applied(None),
    )
    .await;
    let takeover = op(
        1,
        OpKind::AdoptGroup {
            source_id: "g-new".into(),
            name: "team a".into(),
        },
    );
    step(&j, &takeover, applied(None)).await;
    let links = store.links(PAIR).await.unwrap();
    assert!(
        !links.groups.contains_key("g-old"),
        "the departed group's link survives the takeover: {:?}",
        links.groups
    );
    assert_eq!(links.groups["g-new"].name, "team a");
    // The same as the in-memory journal.
    let mem = usersync_core::journal::MemoryJournal::new(LinkTable::default(), NOW);
    for o in [
        op(
            0,
            OpKind::CreateGroup {
                source_id: "g-old".into(),
                name: "Team A".into(),
            },
        ),
        takeover,
    ] {
        mem.before(&o).await.unwrap();
        mem.after(&o, &applied(None)).await.unwrap();
    }
    assert_eq!(mem.link_table(), links);
}

/// The store's journal leaves exactly the links the engine's in-memory journal does, for a
/// mixed sequence of operations and outcomes (including intents never followed by `after`).
#[tokio::test]
async fn store_journal_matches_memory_journal() {
    use usersync_core::journal::MemoryJournal;
    let (store, j, _) = setup().await;
    let mem = MemoryJournal::new(LinkTable::default(), NOW);
    let ops_outcomes: Vec<(Operation, Option<OpOutcome>)> = {
        let mut v = Vec::new();
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        for i in 0..12 {
            let id = format!("s{i}");
            let name = format!("u{i}");
            let outcome = match i % 4 {
                0 => Some(applied(Some(&format!("K{i}")))),
                1 => Some(failed()),
                2 => Some(OpOutcome::Failed {
                    kind: ErrorKind::Other,
                    message: "500".into(),
                }),
                _ => None, // killed mid-write
            };
            v.push((create(next(), &id, &name), outcome));
        }
        for i in (0..12).step_by(4) {
            let id = format!("s{i}");
            let from = format!("u{i}");
            v.push((
                op(
                    next(),
                    OpKind::RenameUser {
                        source_id: id.clone(),
                        from: from.clone(),
                        to: format!("{from}.new"),
                    },
                ),
                Some(applied(None)),
            ));
            v.push((
                op(
                    next(),
                    OpKind::DeactivateUser {
                        source_id: id.clone(),
                        username: from.clone(),
                        target_key: None,
                    },
                ),
                Some(applied(None)),
            ));
            v.push((
                op(
                    next(),
                    OpKind::SetAvatar {
                        source_id: id.clone(),
                        username: from.clone(),
                        photo_tag: format!("t{i}"),
                    },
                ),
                Some(applied(None)),
            ));
        }
        v.push((
            op(
                next(),
                OpKind::DeleteUser {
                    source_id: "s4".into(),
                    username: "u4.new".into(),
                    target_key: None,
                },
            ),
            Some(applied(None)),
        ));
        v.push((
            op(
                next(),
                OpKind::CreateGroup {
                    source_id: "g1".into(),
                    name: "G1".into(),
                },
            ),
            Some(applied(None)),
        ));
        v.push((
            op(
                next(),
                OpKind::CreateGroup {
                    source_id: "g2".into(),
                    name: "G2".into(),
                },
            ),
            None,
        ));
        v.push((
            op(
                next(),
                OpKind::AdoptUser {
                    source_id: "s99".into(),
                    username: "legacy".into(),
                    target_key: None,
                },
            ),
            Some(applied(None)),
        ));
        v.push((
            op(
                next(),
                OpKind::ReactivateUser {
                    source_id: "s8".into(),
                    username: "u8.new".into(),
                    target_key: None,
                },
            ),
            Some(applied(None)),
        ));
        v
    };
    for (op, outcome) in &ops_outcomes {
        j.before(op).await.unwrap();
        mem.before(op).await.unwrap();
        if let Some(outcome) = outcome {
            j.after(op, outcome).await.unwrap();
            mem.after(op, outcome).await.unwrap();
        }
    }
    let stored = store.links(PAIR).await.unwrap();
    assert_eq!(stored, mem.link_table());
    assert!(
        stored.users.len() > 5 && stored.groups.len() == 2,
        "{stored:?}"
    );
}

#[tokio::test]
async fn journal_for_unknown_run_fails_with_a_clear_error() {
    let store = Store::open_in_memory().await.unwrap();
    let j = store.journal(PAIR, 42, NOW);
    let err = j.before(&create(0, "s1", "alice")).await.unwrap_err();
    assert!(err.message.contains("run 42"), "{}", err.message);
    // The failed transaction left no link behind.
    assert!(store.links(PAIR).await.unwrap().users.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_journal_calls_do_not_fail_or_lose_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(tmp.path(), usersync_store::MasterKey::generate())
        .await
        .unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, NOW).await.unwrap();
    let j = store.journal(PAIR, run, NOW);
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let seq = t * 100 + i;
                let o = create(seq, &format!("s{seq}"), &format!("u{seq}"));
                j.before(&o).await.unwrap();
                j.after(&o, &applied(Some(&format!("K{seq}"))))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let links = store.links(PAIR).await.unwrap();
    assert_eq!(links.users.len(), 200);
    assert!(
        links
            .users
            .values()
            .all(|l| l.pending_username.is_none() && l.target_key.is_some())
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().ops.len(), 200);
}
