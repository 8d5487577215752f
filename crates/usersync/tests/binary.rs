//! The binary as a user first meets it: `--help`, log filtering from the environment, and
//! where `usersync demo` leaves its files.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_usersync"));
    c.env_remove("USERSYNC_CONFIG")
        .env_remove("USERSYNC_LOG")
        .env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_opens_with_what_the_program_does() {
    let out = bin().arg("--help").output().expect("run usersync --help");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("Atlassian") && first.contains("Entra ID"),
        "--help should open with what usersync does, got {first:?}"
    );
    assert!(!stdout.contains("wiring"), "{stdout}");
}

/// A config whose `runs` command opens the store (which logs at debug level) and needs no
/// network.
fn minimal_config(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("secret"), "s").unwrap();
    let cfg = format!(
        r#"
data_dir = "data"
[source]
tenant_id = "00000000-0000-4000-8000-000000000001"
client_id = "00000000-0000-4000-8000-000000000002"
client_secret = {{ file = "{d}/secret" }}
[[target]]
name = "jira"
product = "jira"
base_url = "http://127.0.0.1:9"
allow_insecure_http = true
auth = "bearer"
secret = {{ file = "{d}/secret" }}
"#,
        d = dir.display()
    );
    let path = dir.join("usersync.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn runs_with_env(env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = minimal_config(dir.path());
    let mut c = bin();
    c.arg("--config").arg(&cfg).arg("runs");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run usersync runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

#[test]
fn rust_log_is_honoured_and_usersync_log_wins() {
    let quiet = runs_with_env(&[]);
    assert!(
        !text(&quiet.stderr).contains("opened state store"),
        "default is warnings only: {}",
        text(&quiet.stderr)
    );
    let rust_log = runs_with_env(&[("RUST_LOG", "debug")]);
    assert!(
        text(&rust_log.stderr).contains("opened state store"),
        "RUST_LOG=debug should enable debug logs: {}",
        text(&rust_log.stderr)
    );
    let ours = runs_with_env(&[("USERSYNC_LOG", "debug")]);
    assert!(text(&ours.stderr).contains("opened state store"));
    let both = runs_with_env(&[("RUST_LOG", "debug"), ("USERSYNC_LOG", "warn")]);
    assert!(
        !text(&both.stderr).contains("opened state store"),
        "USERSYNC_LOG wins over RUST_LOG: {}",
        text(&both.stderr)
    );
}

#[test]
fn demo_leaves_no_files_in_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .args(["demo", "--users", "10"])
        .output()
        .expect("run usersync demo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "demo wrote {left:?} into the working directory"
    );
    // The config and state stay inspectable afterwards, as the demo's closing hint says.
    let stdout = text(&out.stdout);
    let cfg = tmp.path().join("usersync-demo").join("usersync.toml");
    assert!(cfg.is_file(), "{stdout}");
    assert!(stdout.contains(&cfg.display().to_string()), "{stdout}");
}
