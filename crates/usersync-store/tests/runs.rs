//! Runs stored as rows: a plan written in chunks, read back by page, kind and name; the
//! journal's progress on the rows; a held run's removals for its approval; retention; runs
//! recorded by older versions (plan/report documents) still readable.

use sqlx::Connection as _;
use usersync_core::items::{ItemKind, ItemStatus, RunItem};
use usersync_core::plan::approval::removals;
use usersync_core::plan::{
    AccountSpec, Conflict, ConflictKind, Field, FieldChange, OpKind, OpOutcome, Operation, Plan,
    SkippedUser,
};
use usersync_core::ports::{ApplyJournal, ErrorKind};
use usersync_core::report::Report;
use usersync_store::{ItemFilter, MasterKey, Retention, RunMode, RunStatus, Store};

const PAIR: &str = "entra->jira";
const DAY: i64 = 86_400_000;

fn op(seq: u32, kind: OpKind, reason: &str) -> Operation {
    Operation {
        seq,
        kind,
        reason: reason.into(),
    }
}

fn create(seq: u32, username: &str) -> Operation {
    op(
        seq,
        OpKind::CreateUser {
            source_id: format!("id-{username}"),
            account: AccountSpec {
                username: username.into(),
                display_name: username.to_uppercase(),
                email: format!("{username}@example.com"),
            },
        },
        "new user in the source scope",
    )
}

/// A plan with `creates` creates (more than one write chunk when large), then one of every
/// other operation kind, and subjects of each non-operation kind.
fn sample_plan(creates: u32) -> Plan {
    let mut ops: Vec<Operation> = (0..creates)
        .map(|i| create(i, &format!("User_{i:05}")))
        .collect();
    // The usual UPN-as-username case: the e-mail is the username (stored once).
    if let Some(OpKind::CreateUser { account, .. }) = ops.first_mut().map(|o| &mut o.kind) {
        account.email = account.username.clone();
    }
    let mut seq = creates;
    let mut push = |kind: OpKind, reason: &str| {
        ops.push(op(seq, kind, reason));
        seq += 1;
    };
    push(
        OpKind::UpdateUser {
            source_id: "id-upd".into(),
            username: "Updated.Person".into(),
            changes: vec![FieldChange {
                field: Field::DisplayName,
                before: "Old Name".into(),
                after: "New Name".into(),
            }],
            target_key: Some("JIRAUSER7".into()),
        },
        "the source display name changed",
    );
    push(
        OpKind::RenameUser {
            source_id: "id-ren".into(),
            from: "old.name".into(),
            to: "new.name".into(),
        },
        "renamed",
    );
    push(
        OpKind::AddMembers {
            group: "Sales".into(),
            usernames: vec!["a.one".into(), "b.two".into(), "c.three".into()],
        },
        "3 users members of the source group",
    );
    push(
        OpKind::DeactivateUser {
            source_id: "id-leaver".into(),
            username: "leaver".into(),
            target_key: None,
        },
        "left the source",
    );
    push(
        OpKind::DeleteGroup {
            source_id: "g-old".into(),
            name: "Old Group".into(),
        },
        "left the scope",
    );
    push(
        OpKind::RemoveMember {
            group: "Sales".into(),
            username: "moved.away".into(),
        },
        "no longer a member",
    );
    push(
        OpKind::SetAvatar {
            source_id: "id-upd".into(),
            username: "Updated.Person".into(),
            photo_tag: "etag-1".into(),
        },
        "new picture",
    );
    Plan {
        ops,
        source_complete: true,
        product: "Jira Data Center".into(),
        unchanged: vec!["steady.one".into(), "steady.two".into()],
        conflicts: vec![Conflict {
            kind: ConflictKind::DuplicateUsername,
            name: "twin".into(),
            source_ids: vec!["id-t1".into(), "id-t2".into()],
            detail: "two users map to twin".into(),
        }],
        skipped: vec![SkippedUser {
            source_id: "id-skip".into(),
            upn: "no_name@example.com".into(),
            username: None,
            reason: "no usable username".into(),
        }],
        target_only: vec!["local.admin".into()],
        ..Plan::default()
    }
}

async fn all_items(store: &Store, run: i64, filter: &ItemFilter) -> Vec<RunItem> {
    let mut out = Vec::new();
    store
        .for_each_run_item::<usersync_store::StoreError>(run, filter, |it| {
            out.push(it);
            Ok(())
        })
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn a_plan_is_written_as_rows_and_read_by_page_kind_and_name() {
    let store = Store::open_in_memory().await.unwrap();
    let run = store
        .start_run(PAIR, RunMode::Simulate, 1_000)
        .await
        .unwrap();
    // More creates than one write chunk, so the chunking and the reason texts across chunks
    // are exercised.
    let creates = (usersync_store::CHUNK_ROWS + 1_500) as u32;
    let plan = sample_plan(creates);
    store
        .save_plan(run, &plan, RunMode::Simulate, true)
        .await
        .unwrap();
    let all = ItemFilter::default();
    // One row per op, per username of the batched add, and per other subject.
    let expected = plan.ops.len() + 2 + 2 + 1 + 1 + 1;
    assert_eq!(
        store.count_run_items(run, &all).await.unwrap(),
        expected as u64
    );

    // Pages are in plan order and cover the stream exactly.
    let stream = all_items(&store, run, &all).await;
    assert_eq!(stream.len(), expected);
    let page = store.run_items(run, &all, 4_000, 3).await.unwrap();
    assert_eq!(page, stream[4_000..4_003].to_vec());
    assert_eq!(page[0].name, "User_04000", "the name keeps its case");
    assert!(
        stream
            .windows(2)
            .all(|w| (w[0].seq, w[0].sub) < (w[1].seq, w[1].sub))
    );

    // Every operation comes back from its rows unchanged.
    let mut rebuilt = Vec::new();
    let mut i = 0;
    while i < stream.len() {
        let j = stream[i..]
            .iter()
            .position(|r| r.seq != stream[i].seq)
            .map_or(stream.len(), |n| i + n);
        if let Some(op) = RunItem::to_op(&stream[i..j]) {
            rebuilt.push(op);
        }
        i = j;
    }
    assert_eq!(rebuilt, plan.ops);

    // By kind.
    let kind = |k| ItemFilter {
        kind: Some(k),
        search: None,
    };
    let members = all_items(&store, run, &kind(ItemKind::AddMember)).await;
    assert_eq!(
        members
            .iter()
            .map(|m| (m.name.as_str(), m.group.as_deref(), m.sub))
            .collect::<Vec<_>>(),
        vec![
            ("a.one", Some("Sales"), 0),
            ("b.two", Some("Sales"), 1),
            ("c.three", Some("Sales"), 2)
        ]
    );
    assert_eq!(
        store
            .count_run_items(run, &kind(ItemKind::Create))
            .await
            .unwrap(),
        u64::from(creates)
    );
    let conflict = &all_items(&store, run, &kind(ItemKind::Conflict)).await[0];
    assert_eq!(conflict.detail.source_ids, vec!["id-t1", "id-t2"]);
    assert_eq!(conflict.reason.as_deref(), Some("two users map to twin"));
    let update = &all_items(&store, run, &kind(ItemKind::Update)).await[0];
    assert_eq!(update.detail.changes[0].after, "New Name");
    assert!(
        update.detail.display_name.is_none(),
        "only the diff is stored"
    );

    // By name: case-insensitive substring; `_` is a literal, not a wildcard.
    let search = |q: &str| ItemFilter {
        kind: None,
        search: Some(q.into()),
    };
    let hits = all_items(&store, run, &search("user_0012")).await;
    assert_eq!(hits.len(), 10, "User_00120..User_00129");
    assert!(hits.iter().all(|h| h.name.starts_with("User_0012")));
    assert_eq!(
        store.count_run_items(run, &search("r_0")).await.unwrap(),
        u64::from(creates)
    );
    assert_eq!(store.count_run_items(run, &search("%")).await.unwrap(), 0);
    let both = ItemFilter {
        kind: Some(ItemKind::RemoveMember),
        search: Some("MOVED".into()),
    };
    assert_eq!(
        all_items(&store, run, &both).await[0].group.as_deref(),
        Some("Sales")
    );

    // The summary counts rows per kind; a simulation leaves them pending.
    let view = store.run_view(run).await.unwrap().unwrap();
    let summary = view.report.unwrap();
    assert_eq!(summary.items[&ItemKind::Create], u64::from(creates));
    assert_eq!(summary.items[&ItemKind::AddMember], 3);
    assert!(stream.iter().all(|r| r.status == ItemStatus::Pending));
}

#[tokio::test]
async fn unchanged_users_are_counted_not_stored_unless_asked() {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, 1_000).await.unwrap();
    store
        .save_plan(run, &sample_plan(2), RunMode::Sync, false)
        .await
        .unwrap();
    let unchanged = ItemFilter {
        kind: Some(ItemKind::Unchanged),
        search: None,
    };
    assert_eq!(store.count_run_items(run, &unchanged).await.unwrap(), 0);
    let summary = store.run_view(run).await.unwrap().unwrap().report.unwrap();
    assert!(
        !summary.items.contains_key(&ItemKind::Unchanged),
        "counts stored rows"
    );
    assert_eq!(summary.items[&ItemKind::Conflict], 1);
}

#[tokio::test]
async fn the_journal_and_the_finish_record_outcomes_on_the_rows() {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, 1_000).await.unwrap();
    let plan = sample_plan(3);
    store
        .save_plan(run, &plan, RunMode::Sync, false)
        .await
        .unwrap();
    let j = store.journal(PAIR, run, 1_000);
    let applied = OpOutcome::Applied {
        target_key: Some("JIRAUSER1".into()),
    };
    let failed = OpOutcome::Failed {
        kind: ErrorKind::Conflict,
        message: "already there".into(),
    };
    j.before(&plan.ops[0]).await.unwrap();
    j.after(&plan.ops[0], &applied).await.unwrap();
    j.before(&plan.ops[1]).await.unwrap();
    j.after(&plan.ops[1], &failed).await.unwrap();
    let batch = &plan.ops[5]; // add_members of three
    j.before(batch).await.unwrap();
    j.after(batch, &OpOutcome::Applied { target_key: None })
        .await
        .unwrap();
    j.before(&plan.ops[2]).await.unwrap(); // in flight
    // The apply stopped: the rest are skipped without the journal.
    let outcomes: Vec<OpOutcome> = plan
        .ops
        .iter()
        .enumerate()
        .map(|(i, _)| match i {
            0 | 5 => OpOutcome::Applied { target_key: None },
            1 => failed.clone(),
            _ => OpOutcome::Skipped {
                reason: "not attempted: the run stopped".into(),
            },
        })
        .collect();
    let report = Report::build(
        &plan,
        RunMode::Sync,
        Some(&outcomes),
        Some("stopped".into()),
    );
    store
        .finish_run(run, RunStatus::Partial, &report, 2_000)
        .await
        .unwrap();

    let rows = all_items(&store, run, &ItemFilter::default()).await;
    let at = |seq: u32| rows.iter().find(|r| r.seq == seq).unwrap();
    assert_eq!(at(0).status, ItemStatus::Applied);
    assert_eq!(at(0).outcome, Some(applied));
    assert_eq!(at(1).status, ItemStatus::Failed);
    assert_eq!(at(1).outcome, Some(failed));
    assert_eq!(at(2).status, ItemStatus::Started, "in flight stays started");
    assert!(
        rows.iter()
            .filter(|r| r.seq == 5)
            .all(|r| r.status == ItemStatus::Applied)
    );
    assert_eq!(at(6).status, ItemStatus::Skipped);
    assert!(matches!(at(6).outcome, Some(OpOutcome::Skipped { .. })));
    // Subjects that are no operation stay pending.
    assert!(
        rows.iter()
            .filter(|r| !r.kind.is_op())
            .all(|r| r.status == ItemStatus::Pending)
    );
    // The run's record lists what the journal saw.
    let rec = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        rec.ops.iter().map(|o| o.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(rec.ops[5].op, plan.ops[5]);
    // The summary is the report's, with the row counts of the plan.
    let view = store.run_view(run).await.unwrap().unwrap();
    let summary = view.report.unwrap();
    assert_eq!(summary.stopped.as_deref(), Some("stopped"));
    assert_eq!(summary.outcomes.failed, 1);
    assert_eq!(summary.run.status, Some(RunStatus::Partial));
    assert_eq!(summary.items[&ItemKind::Create], 3);
}

#[tokio::test]
async fn a_held_runs_removals_come_back_from_its_rows() {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, 1_000).await.unwrap();
    let plan = sample_plan(5);
    store
        .save_plan(run, &plan, RunMode::Sync, false)
        .await
        .unwrap();
    let ops = store
        .run_operations(run, &ItemKind::REMOVALS)
        .await
        .unwrap()
        .unwrap();
    let held = Plan {
        ops,
        ..Plan::default()
    };
    let got = removals(&held);
    assert_eq!(got, removals(&plan));
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        store
            .run_operations(9_999, &ItemKind::REMOVALS)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_runs_per_pair_and_deletes_their_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(tmp.path(), MasterKey::from_bytes([3; 32]))
        .await
        .unwrap();
    let now = 100 * DAY;
    let mut ids = Vec::new();
    // Five runs of one pair, a day apart (the oldest 40 days old), and one old run of another.
    for age in [40, 4, 3, 2, 1] {
        let id = store
            .start_run(PAIR, RunMode::Sync, now - age * DAY)
            .await
            .unwrap();
        store
            .save_plan(id, &sample_plan(3), RunMode::Sync, false)
            .await
            .unwrap();
        store.fail_run(id, "x", now - age * DAY + 1).await.unwrap();
        ids.push(id);
    }
    let other = store
        .start_run("entra->crowd", RunMode::Sync, now - 90 * DAY)
        .await
        .unwrap();
    store.fail_run(other, "x", now - 90 * DAY).await.unwrap();
    let running = store
        .start_run(PAIR, RunMode::Sync, now - 50 * DAY)
        .await
        .unwrap();

    let keep = Retention {
        keep_runs: 3,
        keep_days: 30,
    };
    let pruned = store.prune_runs(keep, now).await.unwrap();
    // The pair's newest is the running one (started last); 3 newest = running + 2 days old
    // + 1 day old; the 3- and 4-day-old runs go by count, the 40-day-old one by age. The
    // other pair's only run stays (the newest of a pair is always kept), as does `running`.
    assert_eq!(pruned, 3);
    let left: Vec<i64> = store
        .runs(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![running, other, ids[4], ids[3]]);
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        tmp.path().join(usersync_store::DB_FILE).display()
    ))
    .await
    .unwrap();
    for gone in [ids[0], ids[1], ids[2]] {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_items WHERE run_id = $1")
            .bind(gone)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let t: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_texts WHERE run_id = $1")
            .bind(gone)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let l: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_postings WHERE run_id = $1")
            .bind(gone)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((n, t, l), (0, 0, 0), "rows of run {gone} were left behind");
    }
    assert!(
        store
            .count_run_items(ids[4], &ItemFilter::default())
            .await
            .unwrap()
            > 0
    );
    // Nothing more to prune.
    assert_eq!(store.prune_runs(keep, now).await.unwrap(), 0);
}

#[tokio::test]
async fn runs_recorded_as_documents_stay_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([4; 32]);
    let store = Store::open_with_key(tmp.path(), key.clone()).await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, 1_000).await.unwrap();
    store.close().await;
    // What an older version stored: the plan and the report as documents.
    let plan = sample_plan(2);
    let report = Report::build(&plan, RunMode::Sync, None, None);
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        tmp.path().join(usersync_store::DB_FILE).display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE runs SET plan = $1, report = $2, status = 'held' WHERE id = $3")
        .bind(serde_json::to_string(&plan).unwrap())
        .bind(serde_json::to_string(&report).unwrap())
        .bind(run)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = Store::open_with_key(tmp.path(), key).await.unwrap();
    let view = store.run_view(run).await.unwrap().unwrap();
    assert!(view.legacy && view.report.is_none());
    let doc = store.legacy_report(run).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_value::<Report>(doc)
            .unwrap()
            .operations
            .len(),
        plan.ops.len()
    );
    let ops = store
        .run_operations(run, &ItemKind::REMOVALS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        removals(&Plan {
            ops,
            ..Plan::default()
        }),
        removals(&plan)
    );
}

#[tokio::test]
async fn a_name_search_with_a_kind_checks_kinds_that_share_a_phase() {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, 1_000).await.unwrap();
    // Adoptions of users and groups share a phase, so their seq ranges interleave.
    let adopt = |seq, name: &str| {
        op(
            seq,
            OpKind::AdoptUser {
                source_id: format!("id-{name}"),
                username: name.into(),
                target_key: None,
            },
            "same name",
        )
    };
    let plan = Plan {
        ops: vec![
            adopt(0, "zed.one"),
            op(
                1,
                OpKind::AdoptGroup {
                    source_id: "g-zed".into(),
                    name: "Zed Team".into(),
                },
                "same name",
            ),
            adopt(2, "zed.two"),
            op(
                3,
                OpKind::AddMembers {
                    group: "Zed Team".into(),
                    usernames: vec!["zed.one".into(), "zed.two".into()],
                },
                "members",
            ),
        ],
        ..Plan::default()
    };
    store
        .save_plan(run, &plan, RunMode::Sync, false)
        .await
        .unwrap();
    let f = |kind, q: &str| ItemFilter {
        kind,
        search: Some(q.into()),
    };
    let names = |items: Vec<RunItem>| {
        items
            .into_iter()
            .map(|i| (i.seq, i.sub, i.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(all_items(&store, run, &f(Some(ItemKind::Adopt), "ZED")).await),
        vec![(0, 0, ItemKind::Adopt), (2, 0, ItemKind::Adopt)]
    );
    assert_eq!(
        names(all_items(&store, run, &f(Some(ItemKind::AdoptGroup), "zed")).await),
        vec![(1, 0, ItemKind::AdoptGroup)]
    );
    // A username's rows: its adoption and its membership (sub 1 of the batch).
    assert_eq!(
        names(all_items(&store, run, &f(None, "zed.two")).await),
        vec![(2, 0, ItemKind::Adopt), (3, 1, ItemKind::AddMember)]
    );
    assert_eq!(
        store
            .count_run_items(run, &f(Some(ItemKind::AddMember), "zed"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        names(store.run_items(run, &f(None, "zed"), 1, 2).await.unwrap()),
        vec![(1, 0, ItemKind::AdoptGroup), (2, 0, ItemKind::Adopt)]
    );
    assert!(
        all_items(&store, run, &f(Some(ItemKind::Delete), "zed"))
            .await
            .is_empty()
    );
}
