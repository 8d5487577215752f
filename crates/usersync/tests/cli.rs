//! End-to-end tests of the `usersync` binary against the bundled emulators over real HTTP on
//! 127.0.0.1: config errors and exit codes, simulate writes nothing, sync converges, a
//! no-change run makes no writes, the mass-removal guard holds with exit code 4.

use std::path::Path;
use std::process::Command;
mod common;

use common::{emulators, write_config};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};
use usersync_emulators::graph::{DirectorySeed, GraphConfig, GraphEmulator};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_usersync"))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Out {
    let out = bin()
        .arg("--config")
        .arg(dir.join("usersync.toml"))
        .args(args)
        .env_remove("USERSYNC_CONFIG")
        .output()
        .expect("run usersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn config_errors_name_the_field_and_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usersync.toml"),
        "[source]\ntenant_id = \"not a tenant\"\nclient_id = \"x\"\nclient_secret = { env = \"NOPE\" }\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("source.tenant_id"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));

    // An inline secret is refused with a hint.
    std::fs::write(
        dir.path().join("usersync.toml"),
        "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"535fb089-9ff3-47b6-9bfb-4f1264799865\"\nclient_secret = \"hunter2\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("client_secret"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("hunter2"),
        "secret echoed: {}",
        out.stderr
    );

    // A bad Quartz schedule names the target and the field.
    std::fs::write(
        dir.path().join("usersync.toml"),
        "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"535fb089-9ff3-47b6-9bfb-4f1264799865\"\nclient_secret = { env = \"X\" }\n\
         [[target]]\nname = \"jira\"\nproduct = \"jira\"\nbase_url = \"https://jira.example.com\"\nauth = \"bearer\"\nsecret = { env = \"Y\" }\nschedule = \"0 0 25 * * ?\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("schedule"), "{}", out.stderr);

    // Missing file.
    let out = bin()
        .args(["--config", "/nonexistent/usersync.toml", "simulate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_then_sync_then_nothing() {
    let (graph, jira) = emulators(40).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();

    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["config", "check"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);

    let before = jira.handle().snapshot();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["--format", "json", "simulate"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json report");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(jira.stats().writes(), 0, "simulate must not write");
    assert_eq!(
        serde_json::to_value(jira.handle().snapshot()).unwrap(),
        serde_json::to_value(before).unwrap()
    );

    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let users = jira.handle().users();
    let enabled = graph.tenant().user_ids().len();
    assert!(
        users.len() > enabled / 2,
        "synced {} of {} users",
        users.len(),
        enabled
    );
    // Unmanaged accounts are untouched.
    for u in ["user0001", "user0002", "admin"] {
        assert!(users.iter().any(|x| x.name == u && x.active), "{u} changed");
    }

    jira.reset_stats();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        jira.stats().writes(),
        0,
        "no-change run wrote: {}",
        out.stdout
    );

    let out = tokio::task::spawn_blocking(move || run(&d, &["runs"]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().filter(|l| !l.trim().is_empty()).count(),
        3,
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_removal_is_held_with_exit_4_until_approved() {
    let (graph, jira) = emulators(30).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &graph,
        &jira,
        "[target.sync.policy.guard]\nmax_count = 3\n",
    );
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Ten users leave at once.
    let t = graph.tenant();
    for id in t.user_ids().into_iter().take(10) {
        t.delete_user(&id, true).unwrap();
    }
    jira.reset_stats();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 4, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert_eq!(jira.stats().writes(), 0, "a held run wrote");

    let held = newest_run(&d, "entra->jira").await["id"].to_string();
    let out = tokio::task::spawn_blocking(move || run(&d, &["sync", "--approve", &held]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(jira.stats().writes() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sync_converges_on_the_next_run() {
    let (graph, jira) = emulators(60).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();
    // Slow writes so the kill lands in the middle of the apply.
    jira.handle()
        .set_latency(std::time::Duration::from_millis(15));
    // A short lease, so the killed process's lease expires soon and the next run may start.
    let mut child = bin()
        .arg("--config")
        .arg(d.join("usersync.toml"))
        .arg("sync")
        .env("USERSYNC_LEASE_TTL_MS", "2000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some writes happened, then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while jira.stats().writes() < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "sync never started writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = jira.handle().users().len();
    jira.handle().set_latency(std::time::Duration::ZERO);

    // Refused (exit 8) while the dead process's lease lasts, then it runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let out = loop {
        let out = run_async(&d, &["sync"]).await;
        if out.code != 8 {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let users = jira.handle().users();
    assert!(users.len() >= partial);
    // No duplicates: every e-mail (unique per generated source user) appears once.
    let mut emails: Vec<String> = users.iter().map(|u| u.email.to_lowercase()).collect();
    let n = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(
        emails.len(),
        n,
        "duplicate accounts after an interrupted apply"
    );

    // Converged: one more run has nothing to do.
    jira.reset_stats();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["--format", "json", "sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(jira.stats().writes(), 0, "not converged: {}", out.stdout);
    let out = tokio::task::spawn_blocking(move || run(&d, &["runs"]))
        .await
        .unwrap();
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_explains_a_wrong_secret_and_exits_6() {
    let (graph, jira) = emulators(10).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["test-connection"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);

    // A wrong client secret and a wrong Jira token: both named, with the fix, never echoed.
    std::fs::write(d.join("secret"), "not-the-secret-value").unwrap();
    std::fs::write(d.join("pat"), "not-the-token").unwrap();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["test-connection"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("AADSTS7000215"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Certificates & secrets"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.matches("FAIL").count() >= 2, "{}", out.stdout);
    assert!(
        !out.stdout.contains("not-the-secret-value")
            && !out.stderr.contains("not-the-secret-value")
    );
    assert!(!out.stdout.contains("not-the-token") && !out.stderr.contains("not-the-token"));

    // The JSON form carries the same verdicts.
    let out =
        tokio::task::spawn_blocking(move || run(&d, &["--format", "json", "test-connection"]))
            .await
            .unwrap();
    assert_eq!(out.code, 6);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let verdicts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["verdict"].as_str().unwrap())
        })
        .collect();
    assert!(verdicts.contains(&"fail"), "{verdicts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_does_not_stop_the_others_and_is_recorded() {
    let (graph, jira) = emulators(10).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();
    // A second target whose server is down (nothing listens on port 1).
    let mut cfg = std::fs::read_to_string(d.join("usersync.toml")).unwrap();
    cfg.push_str(&format!(
        "\n[[target]]\nname = \"down\"\nproduct = \"confluence\"\nbase_url = \"http://127.0.0.1:1/confluence\"\nallow_insecure_http = true\nauth = \"bearer\"\nsecret = {{ file = \"{}/pat\" }}\n",
        d.display()
    ));
    std::fs::write(d.join("usersync.toml"), cfg).unwrap();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 6, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("target down"), "{}", out.stderr);
    assert!(
        jira.handle().users().len() > 4,
        "the reachable target was not synced"
    );
    let out = tokio::task::spawn_blocking(move || run(&d, &["runs"]))
        .await
        .unwrap();
    assert!(
        out.stdout.contains("failed") && out.stdout.contains("entra->down"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("succeeded") && out.stdout.contains("entra->jira"),
        "{}",
        out.stdout
    );
}

/// A valid config with one https target; `extra_source` / `extra_target` are appended to the
/// `[source]` and `[[target]]` tables.
fn offline_config(dir: &Path, extra_source: &str, extra_target: &str) {
    std::fs::write(dir.join("secret"), "s").unwrap();
    std::fs::write(
        dir.join("usersync.toml"),
        format!(
            "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"535fb089-9ff3-47b6-9bfb-4f1264799865\"\n\
             client_secret = {{ file = \"{d}/secret\" }}\n{extra_source}\n\
             [[target]]\nname = \"jira\"\nproduct = \"jira\"\nbase_url = \"https://jira.example.com/jira\"\nauth = \"bearer\"\n\
             secret = {{ file = \"{d}/secret\" }}\n{extra_target}\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

fn check_refused(dir: &Path, source: &str, target: &str, field: &str) -> Out {
    offline_config(dir, source, target);
    let out = run(dir, &["config", "check"]);
    assert_eq!(out.code, 5, "{source} {target}: {}", out.stderr);
    assert!(out.stderr.contains(field), "{field}: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

#[test]
fn config_check_refuses_numbers_a_run_would_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    offline_config(d, "", "");
    let out = run(d, &["config", "check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    check_refused(
        d,
        "",
        "max_concurrency = 2305843009213693952",
        ".max_concurrency",
    );
    check_refused(d, "max_concurrency = 0", "", "source.max_concurrency");
    check_refused(d, "", "timeout_secs = 0", ".timeout_secs");
    check_refused(
        d,
        "full_reconcile_every_hours = 9223372036854775807",
        "",
        "source.full_reconcile_every_hours",
    );
    check_refused(
        d,
        "scope_group_ids = [\"sales\"]",
        "",
        "source.scope_group_ids[0]",
    );
    check_refused(
        d,
        "",
        "retry_run_budget_secs = 99999999",
        "retry_run_budget_secs",
    );
    // Unknown enum values list the valid ones.
    offline_config(d, "", "");
    std::fs::write(
        d.join("usersync.toml"),
        std::fs::read_to_string(d.join("usersync.toml"))
            .unwrap()
            .replace("product = \"jira\"", "product = \"jiraa\""),
    )
    .unwrap();
    let out = run(d, &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("confluence"), "{}", out.stderr);
}

#[test]
fn config_check_refuses_insecure_urls_and_bad_ca_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    offline_config(d, "", "");
    // Plain http is refused unless allowed.
    std::fs::write(
        d.join("usersync.toml"),
        std::fs::read_to_string(d.join("usersync.toml"))
            .unwrap()
            .replace("https://jira.example.com", "http://jira.example.com"),
    )
    .unwrap();
    let out = run(d, &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("allow_insecure_http"), "{}", out.stderr);
    // Credentials in the URL are refused and not echoed.
    offline_config(d, "", "");
    std::fs::write(
        d.join("usersync.toml"),
        std::fs::read_to_string(d.join("usersync.toml"))
            .unwrap()
            .replace(
                "https://jira.example.com",
                "https://admin:Pa55word@jira.example.com",
            ),
    )
    .unwrap();
    let out = run(d, &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("base_url"), "{}", out.stderr);
    assert!(!out.stderr.contains("Pa55word"), "{}", out.stderr);
    // A missing and a garbage ca_bundle name the field and the file.
    let missing = d.join("missing-ca.pem");
    let out = check_refused(
        d,
        "",
        &format!("ca_bundle = \"{}\"", missing.display()),
        "ca_bundle",
    );
    assert!(out.stderr.contains("missing-ca.pem"), "{}", out.stderr);
    std::fs::write(d.join("garbage.pem"), "not a certificate").unwrap();
    let out = check_refused(
        d,
        "",
        &format!("ca_bundle = \"{}\"", d.join("garbage.pem").display()),
        "ca_bundle",
    );
    assert!(out.stderr.contains("garbage.pem"), "{}", out.stderr);
}

#[test]
fn secret_errors_exit_5_everywhere_without_echoing_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An unset variable: exit 5 from every command that reads secrets.
    offline_config(d, "", "");
    std::fs::write(
        d.join("usersync.toml"),
        std::fs::read_to_string(d.join("usersync.toml"))
            .unwrap()
            .replacen(
                &format!("client_secret = {{ file = \"{}/secret\" }}", d.display()),
                "client_secret = { env = \"USERSYNC_TEST_UNSET_VAR\" }",
                1,
            ),
    )
    .unwrap();
    for cmd in [
        &["config", "check"][..],
        &["test-connection"][..],
        &["simulate"][..],
        &["sync"][..],
    ] {
        let out = run(d, cmd);
        assert_eq!(out.code, 5, "{cmd:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("source.client_secret"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("USERSYNC_TEST_UNSET_VAR"),
            "{}",
            out.stderr
        );
    }
    // The secret itself pasted into env = / file =: not echoed.
    for pasted in [
        "client_secret = { env = \"Xq8~kF3.pQz-1aBcD_eFgH\" }",
        "client_secret = { file = \"Xq8~kF3.pQz/1aBcD_eFgH\" }",
    ] {
        offline_config(d, "", "");
        std::fs::write(
            d.join("usersync.toml"),
            std::fs::read_to_string(d.join("usersync.toml"))
                .unwrap()
                .replacen(
                    &format!("client_secret = {{ file = \"{}/secret\" }}", d.display()),
                    pasted,
                    1,
                ),
        )
        .unwrap();
        for cmd in [&["config", "check"][..], &["test-connection"][..]] {
            let out = run(d, cmd);
            assert_eq!(out.code, 5, "{cmd:?}: {}", out.stderr);
            assert!(out.stderr.contains("client_secret"), "{}", out.stderr);
            assert!(!out.stderr.contains("Xq8~kF3"), "echoed: {}", out.stderr);
        }
    }
    // A numeric inline secret is not echoed either.
    std::fs::write(
        d.join("usersync.toml"),
        "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"535fb089-9ff3-47b6-9bfb-4f1264799865\"\nclient_secret = 98765432\n",
    )
    .unwrap();
    let out = run(d, &["config", "check"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(!out.stderr.contains("98765432"), "echoed: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflected_token_is_neither_printed_nor_stored() {
    let (graph, jira) = emulators(5).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();
    jira.handle()
        .update_faults(|f| f.reflect_authorization_401 = true);
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["simulate"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(!out.stderr.contains("emulator-pat"), "{}", out.stderr);
    assert!(!out.stdout.contains("emulator-pat"), "{}", out.stdout);
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["--format", "json", "runs"])
    })
    .await
    .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let id = list[0]["id"].as_i64().expect("run id");
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["--format", "json", "runs", "--show", &id.to_string()])
    })
    .await
    .unwrap();
    assert!(out.stdout.contains("redacted"), "{}", out.stdout);
    assert!(!out.stdout.contains("emulator-pat"), "{}", out.stdout);
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["test-connection"])
    })
    .await
    .unwrap();
    assert!(!out.stdout.contains("emulator-pat"), "{}", out.stdout);
}

/// Runs `usersync` with extra environment variables, off the async runtime.
async fn run_async(dir: &Path, args: &'static [&'static str]) -> Out {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || run(&d, args))
        .await
        .unwrap()
}

/// The id of the newest run of `pair`, from `runs --format json`.
async fn newest_run(dir: &Path, pair: &str) -> serde_json::Value {
    let out = run_async(dir, &["--format", "json", "runs"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["pair"] == pair)
        .cloned()
        .unwrap_or_else(|| panic!("no run of {pair}: {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_file_is_refused_unless_initialising() {
    let (graph, jira) = emulators(10).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(d.join("data/usersync.db"), b"").unwrap();
    let out = run_async(d, &["simulate"]).await;
    assert_eq!(out.code, 5, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert!(out.stderr.contains("--init-store"), "{}", out.stderr);
    assert_eq!(jira.stats().writes(), 0);

    // A file that is some other application's SQLite database is refused too.
    let other = d.join("data/usersync.db");
    std::fs::remove_file(&other).unwrap();
    std::process::Command::new("sqlite3")
        .arg(&other)
        .arg("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
        .status()
        .ok();
    if std::fs::metadata(&other)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        let out = run_async(d, &["simulate"]).await;
        assert_eq!(out.code, 5, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("not a usersync"), "{}", out.stderr);
        std::fs::remove_file(&other).unwrap();
    }

    // Told to initialise, an empty file becomes a new store.
    std::fs::write(&other, b"").unwrap();
    let out = run_async(d, &["--init-store", "simulate"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let out = run_async(d, &["simulate"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_source_read_has_its_own_exit_code_and_status() {
    let (graph, jira) = emulators(10).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path();
    // Graph itself unreachable (the token endpoint answers): every page fails.
    let cfg = std::fs::read_to_string(d.join("usersync.toml")).unwrap();
    let cfg = cfg.replace(&graph.graph_url(), "http://127.0.0.1:1");
    std::fs::write(d.join("usersync.toml"), cfg).unwrap();
    let out = run_async(d, &["sync"]).await;
    assert_eq!(out.code, 7, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("INCOMPLETE"), "{}", out.stdout);
    // The text report names what failed.
    assert!(
        out.stdout.contains("127.0.0.1:1") || out.stdout.to_lowercase().contains("connect"),
        "{}",
        out.stdout
    );
    let run = newest_run(d, "entra->jira").await;
    assert_eq!(run["status"], "incomplete", "{run}");
    let out = run_async(d, &["runs"]).await;
    assert!(out.stdout.contains("incomplete"), "{}", out.stdout);
    assert!(!out.stdout.contains("succeeded"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_source_read_is_recorded_with_its_reason() {
    let (graph, jira) = emulators(10).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path();
    std::fs::write(d.join("secret"), "not-the-secret-value").unwrap();
    let out = run_async(d, &["sync"]).await;
    assert_eq!(out.code, 6, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let rec = newest_run(d, "entra->jira").await;
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or_default()
            .contains("AADSTS7000215"),
        "{rec}"
    );
    // `runs --show` in text mode shows the stored error instead of "(no report recorded)".
    let id = rec["id"].as_i64().unwrap().to_string();
    let dd = d.to_path_buf();
    let out = tokio::task::spawn_blocking(move || run(&dd, &["runs", "--show", &id]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("AADSTS7000215"), "{}", out.stdout);
    assert!(!out.stdout.contains("not-the-secret-value"));
    // The run's time includes the source read: recorded start is before the failure.
    assert!(rec["finished_ms"].as_i64().unwrap() >= rec["started_ms"].as_i64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_pair_is_refused_and_a_killed_holder_expires() {
    let (graph, jira) = emulators(60).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path().to_path_buf();
    jira.handle()
        .set_latency(std::time::Duration::from_millis(15));
    // A short lease so the killed holder's lease runs out within the test.
    let mut child = bin()
        .arg("--config")
        .arg(d.join("usersync.toml"))
        .arg("sync")
        .env("USERSYNC_LEASE_TTL_MS", "3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while jira.stats().writes() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "sync never started writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Looking at the history during the run does not mark it interrupted.
    let live = newest_run(&d, "entra->jira").await;
    assert_eq!(live["status"], "running", "{live}");
    // A second sync is refused, naming the running run.
    let out = run_async(&d, &["sync"]).await;
    assert_eq!(out.code, 8, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let live_id = live["id"].as_i64().unwrap();
    assert!(
        out.stderr.contains(&format!("run {live_id}")),
        "{}",
        out.stderr
    );
    let live_again = newest_run(&d, "entra->jira").await;
    assert_eq!(live_again["id"], live["id"]);
    assert_eq!(live_again["status"], "running", "{live_again}");

    child.kill().unwrap();
    child.wait().unwrap();
    jira.handle().set_latency(std::time::Duration::ZERO);
    // Once the dead holder's lease has expired its run is marked interrupted and a new run
    // starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = run_async(&d, &["sync"]).await;
        if out.code == 0 {
            break;
        }
        assert_eq!(out.code, 8, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
        assert!(std::time::Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let out = run_async(&d, &["--format", "json", "runs"]).await;
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let killed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == live["id"])
        .unwrap();
    assert_eq!(killed["status"], "interrupted", "{killed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_held_run_applies_only_its_removals() {
    let (graph, jira) = emulators(30).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &graph,
        &jira,
        "[target.sync.policy.guard]\nmax_count = 3\n",
    );
    let d = dir.path().to_path_buf();
    assert_eq!(run_async(&d, &["sync"]).await.code, 0);

    // Ten users leave: held.
    let t = graph.tenant();
    let ids = t.user_ids();
    for id in ids.iter().take(10) {
        t.delete_user(id, true).unwrap();
    }
    let out = run_async(&d, &["sync"]).await;
    assert_eq!(out.code, 4, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let held = newest_run(&d, "entra->jira").await;
    assert_eq!(held["status"], "held");
    let held_id = held["id"].as_i64().unwrap().to_string();

    // The old override is refused: it approved whatever the new run computed.
    let out = run_async(&d, &["sync", "--allow-mass-removal"]).await;
    assert_eq!(out.code, 2, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--approve"), "{}", out.stderr);

    // One more user leaves after the review: approving the held run holds again, naming them.
    let before = jira.handle().users().iter().filter(|u| u.active).count();
    t.delete_user(&ids[10], true).unwrap();
    jira.reset_stats();
    let dd = d.clone();
    let hid = held_id.clone();
    let out = tokio::task::spawn_blocking(move || run(&dd, &["sync", "--approve", &hid]))
        .await
        .unwrap();
    assert_eq!(out.code, 4, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("not approved"), "{}", out.stdout);
    assert_eq!(jira.stats().writes(), 0, "a re-held run wrote");
    let reheld = newest_run(&d, "entra->jira").await;
    assert_eq!(reheld["status"], "held");
    assert_ne!(reheld["id"], held["id"]);

    // Approving the new held run (which lists all eleven) applies them.
    let rid = reheld["id"].as_i64().unwrap().to_string();
    let dd = d.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(&dd, &["sync", "--approve", &rid, "--approved-by", "alice"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let after = jira.handle().users().iter().filter(|u| u.active).count();
    let dd = d.clone();
    let rid = reheld["id"].as_i64().unwrap().to_string();
    let shown = tokio::task::spawn_blocking(move || {
        run(&dd, &["--format", "json", "runs", "--show", &rid])
    })
    .await
    .unwrap();
    // NDJSON: the run line, then one line per row.
    let lines: Vec<serde_json::Value> = shown
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["record"], "run", "{}", shown.stdout);
    let listed = lines
        .iter()
        .filter(|o| o["record"] == "item" && o["kind"] == "deactivate")
        .count();
    assert!(listed > 3, "{}", shown.stdout);
    assert_eq!(before - after, listed, "{}", out.stdout);
    // Who approved, and which run, is in the history.
    let applied = newest_run(&d, "entra->jira").await;
    assert_eq!(applied["status"], "succeeded");
    assert_eq!(applied["approval"]["approved_by"], "alice", "{applied}");
    assert_eq!(applied["approval"]["held_run"], reheld["id"], "{applied}");

    // An approval in the configuration file is refused.
    let mut cfg = std::fs::read_to_string(d.join("usersync.toml")).unwrap();
    cfg.push_str("allow_mass_removal = true\n");
    std::fs::write(d.join("usersync.toml"), cfg).unwrap();
    let out = run_async(&d, &["config", "check"]).await;
    assert_eq!(out.code, 5, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("allow_mass_removal"), "{}", out.stderr);
    assert!(out.stderr.contains("--approve"), "{}", out.stderr);
}

/// A malformed Graph page (each kind, on `users.delta` and `groups.delta`, on the first and a
/// later page) during a `sync --full` after a user left: the run exits 7 (incomplete, removals
/// withheld), is recorded as `incomplete`, and Jira keeps every account active and every
/// membership. A clean run afterwards does remove the leaver, so the checks could fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_graph_page_withholds_every_removal() {
    use usersync_emulators::graph::{FaultConfig, PageFault, PageFaultKind};
    // Small pages so both delta endpoints span at least two pages.
    let g = GraphConfig {
        directory: DirectorySeed::Custom {
            users: 12,
            groups: 8,
            memberships: 24,
            seed: 7,
        },
        delta_page_size: 5,
        ..GraphConfig::default()
    };
    let graph = GraphEmulator::start(g).await.unwrap();
    let jira = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira).with_seed_users(2))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The guard lets one leaver through, so only the incomplete read can withhold it.
    write_config(
        dir.path(),
        &graph,
        &jira,
        "[target.sync.policy.guard]\nmax_percent = 100.0\nmembership_max_percent = 100.0\n",
    );
    let d = dir.path();
    let out = run_async(d, &["sync"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    graph.reset_stats();
    let out = run_async(d, &["sync", "--full"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    for endpoint in ["users.delta", "groups.delta"] {
        assert!(
            graph.stats().get(endpoint) >= 2,
            "{endpoint} spans two pages: {:?}",
            graph.stats()
        );
    }
    let synced = jira.handle().snapshot();
    assert!(
        jira.handle()
            .users()
            .iter()
            .filter(|u| u.created_via_api)
            .count()
            > 3,
        "accounts were synced"
    );

    // One user leaves the tenant.
    let t = graph.tenant();
    let leaver = t.user_ids().into_iter().next().unwrap();
    t.delete_user(&leaver, true).unwrap();

    let kinds = [
        PageFaultKind::ValueNull,
        PageFaultKind::ValueObject,
        PageFaultKind::ValueMissing,
        PageFaultKind::BothLinks,
        PageFaultKind::SelfLink,
        PageFaultKind::LinkToFirst,
        PageFaultKind::ForeignLink {
            origin: "http://127.0.0.1:9".into(),
        },
    ];
    for kind in &kinds {
        for endpoint in ["users.delta", "groups.delta"] {
            for page in [1, 2] {
                let case = format!("{endpoint} page {page}, {kind:?}");
                t.set_faults(FaultConfig {
                    page_faults: vec![PageFault {
                        endpoint: endpoint.into(),
                        page,
                        kind: kind.clone(),
                    }],
                    ..FaultConfig::default()
                });
                graph.reset_stats();
                jira.reset_stats();
                let out = run_async(d, &["sync", "--full"]).await;
                assert_eq!(
                    out.code, 7,
                    "{case}: stdout:{}\nstderr:{}",
                    out.stdout, out.stderr
                );
                assert!(graph.stats().get("pageFaults") >= 1, "{case}: fault fired");
                let run = newest_run(d, "entra->jira").await;
                assert_eq!(run["status"], "incomplete", "{case}: {run}");
                // Nothing removed: every account active, every membership kept.
                assert!(
                    jira.handle().users().iter().all(|u| u.active),
                    "{case}: an account was deactivated"
                );
                assert_eq!(
                    serde_json::to_value(jira.handle().snapshot()).unwrap(),
                    serde_json::to_value(&synced).unwrap(),
                    "{case}: Jira changed"
                );
            }
        }
    }

    // Without the fault, the leaver is removed: the checks above could have failed.
    t.clear_faults();
    jira.reset_stats();
    let out = run_async(d, &["sync", "--full"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    assert_ne!(
        serde_json::to_value(jira.handle().snapshot()).unwrap(),
        serde_json::to_value(&synced).unwrap(),
        "a complete read removes the leaver"
    );
    assert!(jira.stats().writes() > 0);
}

/// Issue 7.15: a run's recorded duration includes the source read (it was recorded from after
/// the read, so a throttled 2.4 s run showed as 61 ms). Every Graph request here waits 250 ms
/// and a full read makes at least three (token, users delta, groups delta), so the recorded
/// run cannot be shorter than 750 ms: a lower bound set by the injected latency, not a timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_run_includes_the_source_read() {
    let (graph, jira) = emulators(10).await;
    graph
        .tenant()
        .set_latency(std::time::Duration::from_millis(250));
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path();
    let out = run_async(d, &["simulate"]).await;
    assert_eq!(out.code, 0, "stdout:{}\nstderr:{}", out.stdout, out.stderr);
    let rec = newest_run(d, "entra->jira").await;
    let took = rec["finished_ms"].as_i64().unwrap() - rec["started_ms"].as_i64().unwrap();
    assert!(took >= 750, "recorded {took} ms: {rec}");
}

/// `usersync` with owned arguments, off the async runtime.
async fn run_owned(dir: &Path, args: Vec<String>) -> Out {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&d, &args)
    })
    .await
    .unwrap()
}

fn ndjson(out: &Out) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object a line: {e}: {l}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_show_pages_filters_and_streams_ndjson() {
    let (graph, jira) = emulators(40).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &graph, &jira, "");
    let d = dir.path();
    let out = run_async(d, &["simulate"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = newest_run(d, "entra->jira").await["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let show = |extra: &[&str]| {
        let mut a: Vec<String> = vec!["runs".into(), "--show".into(), id.clone()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let json = |extra: &[&str]| {
        let mut a: Vec<String> = vec!["--format".into(), "json".into()];
        a.extend(show(extra));
        a
    };

    // NDJSON: the run with its summary, then every row.
    let all = ndjson(&run_owned(d, json(&[])).await);
    assert_eq!(all[0]["record"], "run");
    assert_eq!(all[0]["status"], "succeeded");
    let summary = &all[0]["report"];
    let items: Vec<&serde_json::Value> = all[1..].iter().collect();
    assert!(items.iter().all(|i| i["record"] == "item"));
    let created = summary["counts"]["users_created"].as_u64().unwrap();
    assert!(created > 10, "{summary}");
    assert_eq!(
        items.iter().filter(|i| i["kind"] == "create").count() as u64,
        created
    );
    assert_eq!(summary["items"]["create"].as_u64(), Some(created));
    assert!(items.iter().all(|i| i["status"] == "pending"));

    // A page is the same rows as the stream at that offset.
    let page = ndjson(&run_owned(d, json(&["--page", "2", "--limit", "3"])).await);
    assert_eq!(page.len(), 1 + 3);
    assert_eq!(page[1..], all[4..7]);
    let off = ndjson(&run_owned(d, json(&["--offset", "4", "--limit", "3"])).await);
    assert_eq!(off[1..], all[5..8]);

    // By kind and by name (any case).
    let creates = ndjson(&run_owned(d, json(&["--kind", "create"])).await);
    assert_eq!(creates.len() as u64 - 1, created);
    let name = creates[3]["name"].as_str().unwrap().to_string();
    let needle = name[..name.len() - 2].to_uppercase();
    let found = ndjson(&run_owned(d, json(&["--search", &needle])).await);
    assert!(found.len() > 1);
    assert!(
        found[1..]
            .iter()
            .all(|i| i["name"].as_str().unwrap().to_uppercase().contains(&needle)),
        "{found:?}"
    );
    assert!(found[1..].iter().any(|i| i["name"] == name.as_str()));

    // Text: the summary, the first page, and how to get the next.
    let out = run_owned(d, show(&["--limit", "5"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Users: "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("Rows: 1–5 of {}", items.len())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--page 2"), "{}", out.stdout);
    let out = run_owned(d, show(&["--kind", "create", "--search", &needle])).await;
    assert!(out.stdout.contains(&name), "{}", out.stdout);

    // An unknown kind names the choices.
    let out = run_owned(d, show(&["--kind", "frobnicate"])).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("add_member"), "{}", out.stderr);
}
