//! Integration tests of the state store: files, migrations, secrets, connectors, runs and
//! source sync state.

use serde_json::json;
use sqlx::Row as _;
use std::path::Path;
use usersync_core::model::{SourceGroup, SourceSnapshot, SourceUser};
use usersync_core::ports::SourceSyncState;
use usersync_store::{MasterKey, RunMode, RunStatus, Store, StoreError};

async fn raw_conn(dir: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", dir.join("usersync.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

#[tokio::test]
async fn migrations_apply_on_fresh_file_and_reopen_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir).await.unwrap();
    assert!(dir.join("usersync.db").exists());
    assert!(dir.join("master.key").exists());
    assert_eq!(std::fs::read(dir.join("master.key")).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("master.key")), 0o600);
        assert_eq!(mode(&dir.join("usersync.db")), 0o600);
    }
    store
        .upsert_connector(
            "entra-jira",
            "entra->jira",
            &json!({"url": "https://jira.example.com"}),
        )
        .await
        .unwrap();
    store
        .put_secret("entra-jira", "client_secret", "s3cr3t-value")
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(&dir).await.unwrap();
    let connectors = store.connectors().await.unwrap();
    assert_eq!(connectors.len(), 1);
    assert_eq!(connectors[0].name, "entra-jira");
    assert_eq!(connectors[0].settings["url"], "https://jira.example.com");
    // Same key file, so the secret still decrypts.
    assert_eq!(
        store
            .get_secret("entra-jira", "client_secret")
            .await
            .unwrap()
            .as_deref(),
        Some("s3cr3t-value")
    );
    // Upsert replaces.
    store
        .upsert_connector(
            "entra-jira",
            "entra->jira",
            &json!({"url": "https://jira2.example.com"}),
        )
        .await
        .unwrap();
    let connectors = store.connectors().await.unwrap();
    assert_eq!(connectors.len(), 1);
    assert_eq!(connectors[0].settings["url"], "https://jira2.example.com");
    store.close().await;

    let mut conn = raw_conn(&dir).await;
    let applied: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    // Every migration file is applied (counted, so parallel branches adding one still agree).
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert_eq!(applied, i64::try_from(files).unwrap());
    let journal_mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(journal_mode, "wal");
}

#[tokio::test]
async fn secrets_are_encrypted_and_a_different_key_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key_a = MasterKey::from_bytes([1; 32]);
    let store = Store::open_with_key(dir, key_a.clone()).await.unwrap();
    store
        .upsert_connector("c1", "entra->jira", &json!({}))
        .await
        .unwrap();
    store
        .put_secret("c1", "client_secret", "PLAINTEXT-canary-123")
        .await
        .unwrap();
    store.put_secret("c1", "other", "second").await.unwrap();
    assert_eq!(
        store
            .get_secret("c1", "client_secret")
            .await
            .unwrap()
            .as_deref(),
        Some("PLAINTEXT-canary-123")
    );
    assert_eq!(store.get_secret("c1", "missing").await.unwrap(), None);
    store.put_secret("c1", "other", "replaced").await.unwrap();
    assert_eq!(
        store.get_secret("c1", "other").await.unwrap().as_deref(),
        Some("replaced")
    );
    store.close().await;

    // The raw column holds no plaintext; the first byte is the key version.
    let mut conn = raw_conn(dir).await;
    let sealed: Vec<u8> =
        sqlx::query("SELECT sealed FROM connector_secrets WHERE name = 'client_secret'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
    assert_eq!(sealed[0], 1);
    assert!(
        !sealed
            .windows(b"PLAINTEXT".len())
            .any(|w| w == b"PLAINTEXT")
    );
    assert_eq!(sealed.len(), 1 + 12 + "PLAINTEXT-canary-123".len() + 16);
    // Nor does the database file itself.
    for file in ["usersync.db", "usersync.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            assert!(
                !bytes
                    .windows(b"PLAINTEXT-canary".len())
                    .any(|w| w == b"PLAINTEXT-canary"),
                "{file}"
            );
        }
    }

    let store = Store::open_with_key(dir, MasterKey::from_bytes([2; 32]))
        .await
        .unwrap();
    let err = store.get_secret("c1", "client_secret").await.unwrap_err();
    assert!(
        matches!(err, StoreError::SecretUndecryptable { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("connector \"c1\" cannot be decrypted: the master key changed"),
        "{msg}"
    );
    assert!(!msg.contains("PLAINTEXT"), "{msg}");
    store.close().await;

    // A value moved to another row fails authentication (AAD binds connector and name).
    let mut conn = raw_conn(dir).await;
    sqlx::query("UPDATE connector_secrets SET sealed = (SELECT sealed FROM connector_secrets WHERE name = 'client_secret') WHERE name = 'other'")
        .execute(&mut conn)
        .await
        .unwrap();
    let store = Store::open_with_key(dir, key_a).await.unwrap();
    assert!(matches!(
        store.get_secret("c1", "other").await,
        Err(StoreError::SecretUndecryptable { .. })
    ));
    assert!(store.delete_secret("c1", "other").await.unwrap());
    assert_eq!(store.get_secret("c1", "other").await.unwrap(), None);
}

#[tokio::test]
async fn lost_key_file_with_secrets_is_refused_not_regenerated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open(dir).await.unwrap();
    store.put_secret("c1", "pw", "x").await.unwrap();
    store.close().await;
    std::fs::remove_file(dir.join("master.key")).unwrap();
    let err = Store::open(dir).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MasterKeyMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("restore the key file"), "{err}");
    assert!(!dir.join("master.key").exists());

    std::fs::write(dir.join("master.key"), b"short").unwrap();
    let err = Store::open(dir).await.unwrap_err().to_string();
    assert!(err.contains("holds 5 bytes, expected exactly 32"), "{err}");
}

/// Child half of [`master_key_from_environment`]: opens the store with whatever
/// `USERSYNC_MASTER_KEY` the parent set. Does nothing unless started by that test.
#[tokio::test]
#[ignore = "helper: run by master_key_from_environment"]
async fn env_key_child() {
    let Ok(dir) = std::env::var("USERSYNC_STORE_ENV_CHILD_DIR") else {
        return;
    };
    match Store::open(Path::new(&dir)).await {
        Ok(store) => {
            store.put_secret("c", "n", "from-child").await.unwrap();
            store.close().await;
            println!("CHILD-OPENED");
        }
        Err(e) => println!("CHILD-ERR: {e}"),
    }
}

#[tokio::test]
async fn master_key_from_environment() {
    use base64::Engine as _;
    let run_child = |dir: &Path, key: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "env_key_child", "--nocapture"])
            .env("USERSYNC_STORE_ENV_CHILD_DIR", dir)
            .env("USERSYNC_MASTER_KEY", key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tmp = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let out = run_child(tmp.path(), &b64);
    assert!(out.contains("CHILD-OPENED"), "{out}");
    // The environment key was used: no key file, and the secret opens with that key.
    assert!(!tmp.path().join("master.key").exists());
    let store = Store::open_with_key(tmp.path(), MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    assert_eq!(
        store.get_secret("c", "n").await.unwrap().as_deref(),
        Some("from-child")
    );

    let tmp = tempfile::tempdir().unwrap();
    let out = run_child(tmp.path(), "dG9vIHNob3J0");
    assert!(
        out.contains("CHILD-ERR: master key in USERSYNC_MASTER_KEY is not 32 bytes of base64"),
        "{out}"
    );
    assert!(!out.contains("dG9vIHNob3J0"), "the key value leaked: {out}");
}

#[tokio::test]
async fn open_errors_are_actionable() {
    let tmp = tempfile::tempdir().unwrap();
    // Data dir path is a file.
    let file = tmp.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open_with_key(&file, MasterKey::generate())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("cannot create data directory {}", file.display())),
        "{err}"
    );

    // A database file that is not SQLite.
    let dir = tmp.path().join("garbage");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("usersync.db"), vec![0x42u8; 8192]).unwrap();
    let err = Store::open_with_key(&dir, MasterKey::generate())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("usersync.db"), "{err}");
    assert!(
        err.contains("not a SQLite database") || err.contains("not a database"),
        "{err}"
    );
}

#[tokio::test]
async fn runs_record_plan_report_and_listing() {
    let store = Store::open_in_memory().await.unwrap();
    let r1 = store
        .start_run("p1", RunMode::Simulate, 1_000)
        .await
        .unwrap();
    let r2 = store.start_run("p2", RunMode::Sync, 2_000).await.unwrap();
    let r3 = store.start_run("p1", RunMode::Sync, 3_000).await.unwrap();
    assert!(r1 < r2 && r2 < r3);
    let empty = usersync_core::plan::Plan::default();
    let report = |mode| usersync_core::report::Report::build(&empty, mode, None, None);
    store
        .save_plan(r1, &empty, RunMode::Simulate, false)
        .await
        .unwrap();
    store
        .finish_run(r1, RunStatus::Succeeded, &report(RunMode::Simulate), 1_500)
        .await
        .unwrap();

    let all = store.runs(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![r3, r2, r1]
    );
    let p1 = store.runs(Some("p1"), 10).await.unwrap();
    assert_eq!(p1.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r3, r1]);
    assert_eq!(store.runs(None, 1).await.unwrap().len(), 1);

    let rec = store.run(r1).await.unwrap().unwrap();
    assert_eq!(rec.summary.status, RunStatus::Succeeded);
    assert_eq!(rec.summary.mode, RunMode::Simulate);
    assert_eq!(rec.summary.finished_ms, Some(1_500));
    assert_eq!(rec.plan, None, "no plan document: the plan is rows");
    assert_eq!(rec.report, None, "no report document: a summary and rows");
    assert!(rec.ops.is_empty());
    let view = store.run_view(r1).await.unwrap().unwrap();
    assert_eq!(
        view.report.unwrap().run.status,
        Some(RunStatus::Succeeded),
        "the summary records the final status"
    );
    assert!(store.run(9_999).await.unwrap().is_none());

    assert!(matches!(
        store.save_plan(9_999, &empty, RunMode::Sync, false).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .finish_run(9_999, RunStatus::Failed, &report(RunMode::Sync), 0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .finish_run(r2, RunStatus::Running, &report(RunMode::Sync), 0)
            .await,
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(store.mark_interrupted_runs().await.unwrap(), 2);
    assert_eq!(
        store.run(r2).await.unwrap().unwrap().summary.status,
        RunStatus::Interrupted
    );
    assert_eq!(store.mark_interrupted_runs().await.unwrap(), 0);
}

/// Builds a deterministic complete source snapshot with `users` users spread over `groups` groups.
pub fn synthetic_snapshot(users: usize, groups: usize) -> SourceSnapshot {
    let users: Vec<SourceUser> = (0..users)
        .map(|i| SourceUser {
            id: format!("{:08x}-1b2c-4d5e-8f90-{:012x}", i, i * 7919),
            upn: format!("user.{i}@contoso.example.com"),
            mail: (i % 10 != 0).then(|| format!("user.{i}@contoso.example.com")),
            given_name: Some(format!("Given{i}")),
            surname: Some(format!("Surname{}", i % 5000)),
            display_name: Some(format!("Given{i} Surname{}", i % 5000)),
            enabled: i % 50 != 0,
            sam_account_name: (i % 3 == 0).then(|| format!("u{i}")),
            employee_id: Some(format!("E{i:07}")),
            photo: (i % 4 == 0).then(|| usersync_core::model::PhotoRef {
                tag: format!("W/\"{i:x}\""),
            }),
        })
        .collect();
    let groups = (0..groups)
        .map(|g| SourceGroup {
            id: format!("group-{g:06}"),
            display_name: format!("Team {g}"),
            description: None,
            member_users: users
                .iter()
                .skip(g)
                .step_by(groups.max(1))
                .map(|u| u.id.clone())
                .collect(),
            member_groups: Default::default(),
        })
        .collect();
    SourceSnapshot {
        users,
        groups,
        complete: true,
        warnings: vec![],
    }
}

#[tokio::test]
async fn source_state_round_trips_and_clears() {
    let store = Store::open_in_memory().await.unwrap();
    assert!(store.source_state("entra").await.unwrap().is_none());
    let state = SourceSyncState {
        cursor: json!({"users": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc"}),
        snapshot: Some(std::sync::Arc::new(synthetic_snapshot(500, 7))),
    };
    store.save_source_state("entra", &state).await.unwrap();
    assert_eq!(
        store.source_state("entra").await.unwrap().as_ref(),
        Some(&state)
    );
    let info = store.source_state_info("entra").await.unwrap().unwrap();
    assert!(
        info.stored_bytes > 0 && info.stored_bytes < info.raw_bytes,
        "{info:?}"
    );

    // Replacing with a cursor-only state.
    let cursor_only = SourceSyncState {
        cursor: json!({"x": 1}),
        snapshot: None,
    };
    store
        .save_source_state("entra", &cursor_only)
        .await
        .unwrap();
    assert_eq!(
        store.source_state("entra").await.unwrap(),
        Some(cursor_only)
    );

    store.clear_source_state("entra").await.unwrap();
    assert!(store.source_state("entra").await.unwrap().is_none());
}

/// 300k users (about 7 s in a debug build): run with `--nocapture` to see the figures.
#[tokio::test]
async fn source_state_300k_users_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(tmp.path(), MasterKey::generate())
        .await
        .unwrap();
    let state = SourceSyncState {
        cursor: json!({"users": "delta"}),
        snapshot: Some(std::sync::Arc::new(synthetic_snapshot(300_000, 2_000))),
    };
    let t = std::time::Instant::now();
    store.save_source_state("entra", &state).await.unwrap();
    let save = t.elapsed();
    let t = std::time::Instant::now();
    let loaded = store.source_state("entra").await.unwrap();
    let load = t.elapsed();
    let info = store.source_state_info("entra").await.unwrap().unwrap();
    assert!(loaded.as_ref() == Some(&state));
    store.close().await;
    let db_size = std::fs::metadata(tmp.path().join("usersync.db"))
        .unwrap()
        .len();
    println!(
        "300k users / 2k groups: save {save:?}, load {load:?}, json {} MB, stored {} MB, db file {} MB",
        info.raw_bytes / 1_000_000,
        info.stored_bytes / 1_000_000,
        db_size / 1_000_000
    );
}

/// Measures reading a 300k-row link table: `cargo test -p usersync-store -- --ignored
/// --nocapture links_300k`.
#[tokio::test]
#[ignore = "measurement"]
async fn links_300k_read_time() {
    use sqlx::Connection as _;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(tmp.path(), MasterKey::generate())
        .await
        .unwrap();
    let mut conn = raw_conn(tmp.path()).await;
    let mut tx = conn.begin().await.unwrap();
    for i in 0..300_000i64 {
        sqlx::query(
            "INSERT INTO user_links (pair, source_id, username, target_key, photo_tag) VALUES ('p', $1, $2, $3, $4)",
        )
        .bind(format!("{i:08x}-1b2c-4d5e-8f90-{:012x}", i * 7919))
        .bind(format!("user.{i}@contoso.example.com"))
        .bind(format!("JIRAUSER{i}"))
        .bind(format!("W/\"{i:x}\""))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let t = std::time::Instant::now();
    let rows = sqlx::query("SELECT source_id, username, target_key, pending_username, deactivated_at_ms, photo_tag FROM user_links WHERE pair = 'p'").fetch_all(&mut conn).await.unwrap();
    println!(
        "raw fetch_all of 300k rows: {:?} ({})",
        t.elapsed(),
        rows.len()
    );
    drop(rows);
    let t = std::time::Instant::now();
    let links = store.links("p").await.unwrap();
    println!("links() of 300k users: {:?}", t.elapsed());
    assert_eq!(links.users.len(), 300_000);
}
