//! Child processes: the emulators (kept running for a size) and one measured `usersync` run.
//!
//! Peak RSS is the child's own: every `usersync` run is started through this binary's hidden
//! `__measure` mode, a small intermediate process whose only child is that run, so
//! `getrusage(RUSAGE_CHILDREN)` after the wait is exactly the run's `ru_maxrss` (Linux: KiB) —
//! the emulators, a separate process, are not in it.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The hidden first argument that turns this binary into the measuring intermediate.
pub(crate) const MEASURE: &str = "__measure";

/// What `__measure` reports about the command it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// The command's exit code (`None` when killed by a signal).
    pub(crate) exit_code: Option<i32>,
    /// Wall time from spawn to exit.
    pub(crate) wall_ms: u64,
    /// Peak resident set size of the command (`ru_maxrss`), KiB.
    pub(crate) max_rss_kib: u64,
}

/// `__measure RESULT STDOUT STDERR -- PROGRAM ARGS…`: runs the program with its output in the
/// two files, waits, and writes [`Measured`] as JSON to RESULT.
pub(crate) fn measure_main(args: &[String]) -> anyhow::Result<()> {
    let [result, stdout, stderr, dashes, program, rest @ ..] = args else {
        bail!("usage: {MEASURE} RESULT STDOUT STDERR -- PROGRAM ARGS…");
    };
    if dashes != "--" {
        bail!("usage: {MEASURE} RESULT STDOUT STDERR -- PROGRAM ARGS…");
    }
    let t = Instant::now();
    let status = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout)?)
        .stderr(std::fs::File::create(stderr)?)
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    let wall_ms = t.elapsed().as_millis() as u64;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let m = Measured {
        exit_code: status.code(),
        wall_ms,
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
    };
    std::fs::write(result, serde_json::to_vec(&m)?)?;
    Ok(())
}

/// Runs `program args` through `__measure`; stdout and stderr go to `<prefix>.out` / `.err`.
pub(crate) fn run_measured(
    program: &Path,
    args: &[String],
    prefix: &Path,
) -> anyhow::Result<Measured> {
    let result = prefix.with_extension("measure.json");
    let out = prefix.with_extension("out");
    let err = prefix.with_extension("err");
    let me = std::env::current_exe()?;
    let status = Command::new(&me)
        .arg(MEASURE)
        .arg(&result)
        .arg(&out)
        .arg(&err)
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .context("cannot start the measuring process")?;
    if !status.success() {
        bail!("the measuring process failed ({status})");
    }
    Ok(serde_json::from_slice(&std::fs::read(&result)?)?)
}

/// An emulator process, killed when dropped.
pub(crate) struct Emulator {
    child: Child,
    /// The JSON line it printed once listening.
    pub(crate) info: serde_json::Value,
}

impl Emulator {
    /// Starts `usersync-emulators ARGS…` and waits for its JSON line.
    pub(crate) fn start(bin: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("emulator stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let info = serde_json::from_str(line.trim()).with_context(|| {
            format!(
                "the emulator ({}) printed no JSON line; see {}",
                args.join(" "),
                log.display()
            )
        });
        let mut emu = Self {
            child,
            info: serde_json::Value::Null,
        };
        emu.info = info?;
        Ok(emu)
    }

    /// A string field of the JSON line.
    pub(crate) fn field(&self, name: &str) -> anyhow::Result<String> {
        self.info
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("the emulator's JSON line has no `{name}`: {}", self.info))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Total size of the files under `dir` (0 when it does not exist), e.g. a store with its WAL.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
