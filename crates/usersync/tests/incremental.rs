//! Incremental target reads, end to end against the emulators over real HTTP on 127.0.0.1:
//! between full reconciles a no-change run reads a fixed number of target requests whatever
//! the directory's size, an admin's change in Jira is never turned into a wrong removal and is
//! repaired by the next full reconcile, and a source change reads only what it touches.
//! Request counts come from the emulators' counters; nothing here is timed.

use std::path::Path;
use std::process::Command;
mod common;

use common::{emulators, write_config};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(dir: &Path, args: &[&str]) -> Out {
    let d = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_usersync"))
            .arg("--config")
            .arg(d.join("usersync.toml"))
            .args(&args)
            .env_remove("USERSYNC_CONFIG")
            .output()
            .expect("run usersync");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Runs `sync` (plus `extra`) with a JSON report and returns it.
async fn sync_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--format", "json", "sync"];
    args.extend_from_slice(extra);
    let out = run(dir, &args).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json report");
    // One target: the report, or a list with one report.
    match v {
        serde_json::Value::Array(mut a) => a.remove(0),
        v => v,
    }
}

fn target_mode(report: &serde_json::Value) -> String {
    report["run"]["target_read"]["mode"]["mode"]
        .as_str()
        .unwrap_or_else(|| panic!("no target_read in {}", report["run"]))
        .to_string()
}

const NO_CHANGE_TARGET_REQUESTS: u64 = 3;

/// Initial sync, then a no-change sync: (target requests, target writes, graph requests) of
/// the second run, and its report.
async fn no_change_run(users: u32) -> (u64, u64, u64, serde_json::Value) {
    let (graph, jira) = emulators(users).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let first = sync_json(dir.path(), &[]).await;
    assert_eq!(target_mode(&first), "full");
    assert!(jira.stats().writes() > 0);
    jira.reset_stats();
    graph.tenant().reset_stats();
    let second = sync_json(dir.path(), &[]).await;
    let js = jira.stats();
    let graph_requests = graph.tenant().stats().total();
    (js.total(), js.writes(), graph_requests, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_change_run_reads_a_fixed_number_of_target_requests_at_any_size() {
    for users in [40, 200] {
        let (requests, writes, graph_requests, report) = no_change_run(users).await;
        assert_eq!(target_mode(&report), "incremental", "{users} users");
        assert_eq!(writes, 0, "{users} users: a no-change run wrote");
        assert!(
            requests <= NO_CHANGE_TARGET_REQUESTS,
            "{users} users: {requests} target requests"
        );
        // Token + the users and groups delta pages.
        assert!(
            graph_requests <= 4,
            "{users} users: {graph_requests} Graph requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_change_in_jira_is_never_a_wrong_removal_and_is_repaired_by_the_reconcile() {
    let (graph, jira) = emulators(40).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    sync_json(dir.path(), &[]).await;
    let h = jira.handle();
    let managed: Vec<String> = h
        .users()
        .into_iter()
        .filter(|u| u.name.contains('@'))
        .map(|u| u.name)
        .collect();
    assert!(managed.len() >= 2, "{managed:?}");
    let (deactivated, deleted) = (&managed[0], &managed[1]);
    let groups_before = h.groups_of(deactivated);
    // An admin deactivates one managed account and deletes another, directly in Jira.
    assert!(h.set_active(deactivated, false));
    assert!(h.delete_user(deleted));
    let before = h.snapshot();

    // Between reconciles: the run does not see it and writes nothing — in particular it
    // removes nothing (no membership removal, deactivation or delete).
    jira.reset_stats();
    let inc = sync_json(dir.path(), &[]).await;
    assert_eq!(target_mode(&inc), "incremental");
    let s = jira.stats();
    assert_eq!(s.writes(), 0, "{:?}", s.requests);
    assert_eq!(
        serde_json::to_value(h.snapshot()).unwrap(),
        serde_json::to_value(before).unwrap()
    );

    // The full reconcile repairs both: policy reactivates the account whose source user is
    // enabled, and recreates the deleted one.
    let full = sync_json(dir.path(), &["--full"]).await;
    assert_eq!(full["run"]["target_read"]["mode"]["mode"], "full");
    assert_eq!(full["run"]["target_read"]["mode"]["reason"], "forced");
    let u = h.user(deactivated).expect("still there");
    assert!(u.active, "reactivated by the reconcile");
    assert_eq!(h.groups_of(deactivated), groups_before);
    assert!(h.user(deleted).is_some(), "recreated by the reconcile");

    // And the state the reconcile left is right: the next run is incremental and quiet.
    jira.reset_stats();
    let again = sync_json(dir.path(), &[]).await;
    assert_eq!(target_mode(&again), "incremental");
    assert_eq!(jira.stats().writes(), 0);
    assert!(jira.stats().total() <= NO_CHANGE_TARGET_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_change_reads_only_what_it_touches_and_removes_after_a_re_read() {
    let (graph, jira) = emulators(60).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    sync_json(dir.path(), &[]).await;
    let h = jira.handle();
    // Disable one synced source user: the incremental run deactivates exactly that account.
    let t = graph.tenant();
    let id = t
        .user_ids()
        .into_iter()
        .find(|id| {
            t.user_upn(id)
                .is_some_and(|upn| h.user(&upn).is_some_and(|u| u.active))
        })
        .expect("a synced user");
    let upn = t.user_upn(&id).unwrap();
    t.set_account_enabled(&id, false).unwrap();
    jira.reset_stats();
    let inc = sync_json(dir.path(), &[]).await;
    assert_eq!(target_mode(&inc), "incremental");
    assert!(!h.user(&upn).unwrap().active, "deactivated");
    let s = jira.stats();
    assert_eq!(s.writes(), 1, "{:?}", s.requests);
    // Reads: the account before planning, and again right before the deactivation.
    assert!(s.total() <= 4, "{:?}", s.requests);
    let log = &s.log;
    let put = log
        .iter()
        .position(|l| l.starts_with("PUT /rest/api/2/user"))
        .expect("deactivation");
    assert!(
        log[..put]
            .iter()
            .rev()
            .take(1)
            .any(|l| l.starts_with("GET /rest/api/2/user?username=")),
        "the write is preceded by a re-read: {log:?}"
    );
    // A clean apply leaves the state clean: the next run is incremental and quiet.
    jira.reset_stats();
    let again = sync_json(dir.path(), &[]).await;
    assert_eq!(target_mode(&again), "incremental");
    assert_eq!(jira.stats().writes(), 0);
}
