//! Crash consistency: a store dropped mid-apply, and a process aborted at an arbitrary instant
//! while journaling, leave a consistent database from which the next run converges to the same
//! links as an uninterrupted apply, with no duplicate accounts.

use sqlx::Row as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use usersync_core::link::LinkTable;
use usersync_core::plan::{AccountSpec, OpKind, OpOutcome, Operation};
use usersync_core::ports::ApplyJournal;
use usersync_store::{MasterKey, OpStatus, RunMode, RunStatus, Store};

const PAIR: &str = "entra-jira";
const NOW: i64 = 1_700_000_000_000;
const CHILD_ENV: &str = "USERSYNC_STORE_CRASH_DIR";
const DELAY_ENV: &str = "USERSYNC_STORE_CRASH_DELAY_MS";

fn key() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn create(seq: u32) -> Operation {
    Operation {
        seq,
        kind: OpKind::CreateUser {
            source_id: format!("s{seq}"),
            account: AccountSpec {
                username: format!("u{seq}"),
                display_name: format!("User {seq}"),
                email: format!("u{seq}@example.com"),
            },
        },
        reason: "new source user".into(),
    }
}

fn rename(seq: u32, id: &str, from: &str, to: &str) -> Operation {
    Operation {
        seq,
        kind: OpKind::RenameUser {
            source_id: id.into(),
            from: from.into(),
            to: to.into(),
        },
        reason: "UPN changed".into(),
    }
}

fn applied(seq: u32) -> OpOutcome {
    OpOutcome::Applied {
        target_key: Some(format!("K{seq}")),
    }
}

async fn integrity_ok(dir: &Path) {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", dir.join("usersync.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let res: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(res, "ok");
    let fk: Vec<sqlx::sqlite::SqliteRow> = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(fk.is_empty());
}

async fn uninterrupted(ops: &[Operation]) -> LinkTable {
    let store = Store::open_in_memory().await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, NOW).await.unwrap();
    let j = store.journal(PAIR, run, NOW);
    for op in ops {
        j.before(op).await.unwrap();
        j.after(op, &applied(op.seq)).await.unwrap();
    }
    store.links(PAIR).await.unwrap()
}

#[tokio::test]
async fn store_dropped_mid_apply_reopens_consistent_and_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = vec![create(0), create(1), rename(2, "s0", "u0", "u0-renamed")];
    let run = {
        let store = Store::open_with_key(dir, key()).await.unwrap();
        let run = store.start_run(PAIR, RunMode::Sync, NOW).await.unwrap();
        store
            .save_plan(
                run,
                &usersync_core::plan::Plan {
                    ops: plan.clone(),
                    ..Default::default()
                },
                RunMode::Sync,
                false,
            )
            .await
            .unwrap();
        let j = store.journal(PAIR, run, NOW);
        j.before(&plan[0]).await.unwrap();
        j.after(&plan[0], &applied(0)).await.unwrap();
        j.before(&plan[1]).await.unwrap(); // create in flight
        j.before(&plan[2]).await.unwrap(); // rename in flight
        run
        // Store and journal dropped here without close().
    };
    integrity_ok(dir).await;
    let store = Store::open_with_key(dir, key()).await.unwrap();
    let links = store.links(PAIR).await.unwrap();
    assert_eq!(links.users.len(), 2);
    let s0 = &links.users["s0"];
    assert_eq!(
        (s0.username.as_str(), s0.pending_username.as_deref()),
        ("u0", Some("u0-renamed"))
    );
    assert_eq!(s0.target_key.as_deref(), Some("K0"));
    let s1 = &links.users["s1"];
    assert_eq!(
        (s1.username.as_str(), s1.pending_username.as_deref()),
        ("u1", Some("u1"))
    );

    assert_eq!(store.mark_interrupted_runs().await.unwrap(), 1);
    let rec = store.run(run).await.unwrap().unwrap();
    assert_eq!(rec.summary.status, RunStatus::Interrupted);
    assert!(store.run_view(run).await.unwrap().unwrap().report.is_some());
    let statuses: Vec<_> = rec.ops.iter().map(|o| (o.seq, o.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (0, OpStatus::Applied),
            (1, OpStatus::Started),
            (2, OpStatus::Started)
        ]
    );

    // The next run redoes what was in flight (here: both writes had not reached the target).
    let run2 = store.start_run(PAIR, RunMode::Sync, NOW + 1).await.unwrap();
    let j2 = store.journal(PAIR, run2, NOW + 1);
    for op in &plan[1..] {
        j2.before(op).await.unwrap();
        j2.after(op, &applied(op.seq)).await.unwrap();
    }
    assert_eq!(store.links(PAIR).await.unwrap(), uninterrupted(&plan).await);
}

/// The child half of [`process_aborted_mid_apply_leaves_consistent_store`]: journals creates
/// until another thread aborts the process. Does nothing unless started by that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: run by process_aborted_mid_apply_leaves_consistent_store"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let delay: u64 = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(100);
    let store = Store::open_with_key(Path::new(&dir), key()).await.unwrap();
    let run = store.start_run(PAIR, RunMode::Sync, NOW).await.unwrap();
    let j = store.journal(PAIR, run, NOW);
    for seq in 0..1_000_000u32 {
        let op = create(seq);
        j.before(&op).await.unwrap();
        j.after(&op, &applied(seq)).await.unwrap();
        if seq == 0 {
            // Abort from another thread at an arbitrary instant: possibly mid-transaction.
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(delay));
                std::process::abort();
            });
        }
    }
    panic!("the abort timer did not fire");
}

#[tokio::test]
async fn process_aborted_mid_apply_leaves_consistent_store() {
    for delay_ms in [20u64, 90, 250] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir)
            .env(DELAY_ENV, delay_ms.to_string())
            .output()
            .unwrap();
        assert!(!out.status.success(), "child should have aborted: {out:?}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(
                out.status.signal(),
                Some(6),
                "child did not die of SIGABRT: {out:?}"
            );
        }

        integrity_ok(dir).await;
        let store = Store::open_with_key(dir, key()).await.unwrap();
        assert_eq!(store.mark_interrupted_runs().await.unwrap(), 1);
        let run = store.runs(Some(PAIR), 1).await.unwrap()[0].id;
        let rec = store.run(run).await.unwrap().unwrap();
        let status: BTreeMap<u32, OpStatus> = rec.ops.iter().map(|o| (o.seq, o.status)).collect();
        let applied_n = status.values().filter(|s| **s == OpStatus::Applied).count();
        let started: Vec<u32> = status
            .iter()
            .filter(|(_, s)| **s == OpStatus::Started)
            .map(|(q, _)| *q)
            .collect();
        assert!(applied_n >= 1, "child aborted before its first op");
        assert!(
            started.len() <= 1,
            "more than one op in flight: {started:?}"
        );
        // Ops are journaled in order: applied ones form a prefix, the in-flight one follows.
        let max = *status.keys().max().unwrap();
        assert_eq!(status.len() as u32, max + 1);

        // Every link is explained by the run's records, and vice versa.
        let links = store.links(PAIR).await.unwrap();
        assert_eq!(links.users.len(), status.len());
        for (seq, st) in &status {
            let l = &links.users[&format!("s{seq}")];
            assert_eq!(l.username, format!("u{seq}"));
            match st {
                OpStatus::Applied => {
                    assert_eq!(l.pending_username, None);
                    assert_eq!(l.target_key, Some(format!("K{seq}")));
                }
                OpStatus::Started => {
                    assert_eq!(l.pending_username.as_deref(), Some(l.username.as_str()));
                    assert_eq!(l.target_key, None);
                }
                other => panic!("unexpected status {other:?}"),
            }
        }

        // The next run applies what is left of the same plan and converges.
        let plan: Vec<Operation> = (0..=max + 3).map(create).collect();
        let run2 = store.start_run(PAIR, RunMode::Sync, NOW + 1).await.unwrap();
        let j2 = store.journal(PAIR, run2, NOW + 1);
        for op in plan
            .iter()
            .filter(|o| status.get(&o.seq) != Some(&OpStatus::Applied))
        {
            j2.before(op).await.unwrap();
            j2.after(op, &applied(op.seq)).await.unwrap();
        }
        let links = store.links(PAIR).await.unwrap();
        assert_eq!(links, uninterrupted(&plan).await);
        let usernames: BTreeSet<_> = links
            .users
            .values()
            .map(|l| l.username.to_lowercase())
            .collect();
        assert_eq!(usernames.len(), links.users.len(), "duplicate accounts");
        store.close().await;
        eprintln!("abort after {delay_ms} ms: {applied_n} ops applied, in flight: {started:?}");
    }
}
