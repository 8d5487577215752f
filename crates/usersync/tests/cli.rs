//! End-to-end tests of the `usersync` binary against the bundled emulators over real HTTP on
//! 127.0.0.1: config errors and exit codes, simulate writes nothing, sync converges, a
//! no-change run makes no writes, the mass-removal guard holds with exit code 4.

use std::path::Path;
use std::process::Command;
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};
use usersync_emulators::graph::{self, DirectorySeed, GraphConfig, GraphEmulator};

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

fn write_config(dir: &Path, graph: &GraphEmulator, jira: &AtlassianEmulator, policy_extra: &str) {
    std::fs::write(dir.join("secret"), graph::DEFAULT_CLIENT_SECRET).unwrap();
    std::fs::write(dir.join("pat"), "emulator-pat").unwrap();
    let cfg = format!(
        r#"
data_dir = "data"
[source]
tenant_id = "{}"
client_id = "{}"
client_secret = {{ file = "{d}/secret" }}
login_url = "{}"
graph_url = "{}"
allow_insecure_http = true
[[target]]
name = "jira"
product = "jira"
base_url = "{}"
auth = "bearer"
secret = {{ file = "{d}/pat" }}
allow_insecure_http = true
[target.sync.scope]
flatten_nested = true
[target.sync.policy]
access_groups = ["jira-software-users"]
{policy_extra}
"#,
        graph::DEFAULT_TENANT_ID,
        graph::DEFAULT_CLIENT_ID,
        graph.login_url(),
        graph.graph_url(),
        jira.base_url(),
        d = dir.display()
    );
    std::fs::write(dir.join("usersync.toml"), cfg).unwrap();
}

async fn emulators(users: u32) -> (GraphEmulator, AtlassianEmulator) {
    let g = GraphConfig {
        directory: DirectorySeed::Custom {
            users,
            groups: 5,
            memberships: users * 2,
            seed: 7,
        },
        ..GraphConfig::default()
    };
    let graph = GraphEmulator::start(g).await.unwrap();
    let jira = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira).with_seed_users(2))
        .await
        .unwrap();
    (graph, jira)
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
async fn mass_removal_is_held_with_exit_4_until_overridden() {
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

    let out = tokio::task::spawn_blocking(move || run(&d, &["sync", "--allow-mass-removal"]))
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
    let mut child = bin()
        .arg("--config")
        .arg(d.join("usersync.toml"))
        .arg("sync")
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

    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(&d, &["sync"])
    })
    .await
    .unwrap();
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
