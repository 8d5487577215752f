//! The per-pair lease (one run of a connector–target pair at a time, across processes), runs
//! marked interrupted only once their owner's lease is gone, failed runs with their error,
//! approvals, and refusing an empty or foreign database file.

use usersync_core::run::{RunMode, RunStatus};
use usersync_store::{MasterKey, Store, StoreError};

const PAIR: &str = "entra->jira";
const TTL: i64 = 60_000;

#[tokio::test]
async fn a_second_owner_is_refused_until_the_lease_expires_or_is_released() {
    let store = Store::open_in_memory().await.unwrap();
    let a = store
        .acquire_lease(PAIR, "host:1", TTL, 1_000)
        .await
        .unwrap();
    let run = store
        .start_leased_run(&a, RunMode::Sync, 1_000)
        .await
        .unwrap();

    // Another owner (or the same process again) is refused, naming the run.
    let err = store
        .acquire_lease(PAIR, "host:2", TTL, 2_000)
        .await
        .unwrap_err();
    match &err {
        StoreError::LeaseHeld {
            pair,
            owner,
            run_id,
            ..
        } => {
            assert_eq!(pair, PAIR);
            assert_eq!(owner, "host:1");
            assert_eq!(*run_id, Some(run));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&format!("run {run}")), "{err}");
    // Other pairs are independent.
    store
        .acquire_lease("entra->wiki", "host:2", TTL, 2_000)
        .await
        .unwrap();

    // While the lease is live the run is not interrupted, however often the history is read.
    assert_eq!(store.mark_interrupted_runs_at(30_000).await.unwrap(), 0);
    // Renewal moves the expiry.
    let a = store.renew_lease(&a, TTL, 50_000).await.unwrap();
    assert_eq!(a.expires_ms, 110_000);
    assert_eq!(store.mark_interrupted_runs_at(100_000).await.unwrap(), 0);
    assert_eq!(
        store.run(run).await.unwrap().unwrap().summary.status,
        RunStatus::Running
    );

    // The holder dies: once its lease has expired the run is interrupted and the pair is free,
    // with a higher fencing token.
    assert_eq!(store.mark_interrupted_runs_at(110_001).await.unwrap(), 1);
    assert_eq!(
        store.run(run).await.unwrap().unwrap().summary.status,
        RunStatus::Interrupted
    );
    let b = store
        .acquire_lease(PAIR, "host:2", TTL, 110_001)
        .await
        .unwrap();
    assert!(b.token > a.token);
    // The old holder can neither renew nor finish its run (fenced).
    assert!(matches!(
        store.renew_lease(&a, TTL, 110_002).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        store
            .finish_run(run, RunStatus::Succeeded, &empty_report(), 110_003)
            .await,
        Err(StoreError::LeaseLost { .. })
    ));

    // Released: acquirable at once.
    store.release_lease(&b).await.unwrap();
    let c = store
        .acquire_lease(PAIR, "host:3", TTL, 110_004)
        .await
        .unwrap();
    assert!(c.token > b.token);
}

#[tokio::test]
async fn failed_runs_keep_their_error_and_approvals_are_recorded() {
    let store = Store::open_in_memory().await.unwrap();
    let lease = store.acquire_lease(PAIR, "me", TTL, 1_000).await.unwrap();
    let run = store
        .start_leased_run(&lease, RunMode::Sync, 1_000)
        .await
        .unwrap();
    store
        .fail_run(
            run,
            "source entra: AADSTS7000215 invalid client secret",
            1_500,
        )
        .await
        .unwrap();
    let rec = store.run(run).await.unwrap().unwrap();
    assert_eq!(rec.summary.status, RunStatus::Failed);
    assert_eq!(
        rec.summary.error.as_deref(),
        Some("source entra: AADSTS7000215 invalid client secret")
    );
    assert_eq!(rec.summary.finished_ms, Some(1_500));
    let listed = store.runs(Some(PAIR), 5).await.unwrap();
    assert_eq!(listed[0].error, rec.summary.error);

    let next = store
        .start_leased_run(&lease, RunMode::Sync, 2_000)
        .await
        .unwrap();
    store
        .record_approval(next, run, "alice", 2_001)
        .await
        .unwrap();
    let a = store
        .run(next)
        .await
        .unwrap()
        .unwrap()
        .summary
        .approval
        .unwrap();
    assert_eq!(
        (a.held_run, a.approved_by.as_str(), a.approved_ms),
        (run, "alice", 2_001)
    );
}

#[tokio::test]
async fn an_empty_database_file_is_refused_unless_initialising() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("usersync.db"), b"").unwrap();
    let err = Store::open_with_key(dir, MasterKey::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyDatabase { .. }), "{err}");
    assert!(err.to_string().contains("--init-store"), "{err}");
    // Still empty: nothing was written.
    assert_eq!(std::fs::metadata(dir.join("usersync.db")).unwrap().len(), 0);

    let store = Store::initialise_with_key(dir, MasterKey::generate())
        .await
        .unwrap();
    store.close().await;
    // Now a usersync store: opens normally.
    Store::open_with_key(dir, MasterKey::generate())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_foreign_database_is_refused_even_when_initialising() {
    use sqlx::Connection as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}?mode=rwc", dir.join("usersync.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    for init in [false, true] {
        let res = if init {
            Store::initialise_with_key(dir, MasterKey::generate()).await
        } else {
            Store::open_with_key(dir, MasterKey::generate()).await
        };
        let err = res.unwrap_err();
        assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err}");
        assert!(err.to_string().contains("not a usersync"), "{err}");
    }
}

fn empty_report() -> usersync_core::report::Report {
    usersync_core::report::Report::build(
        &usersync_core::plan::Plan::default(),
        RunMode::Sync,
        None,
        None,
    )
}
