//! Everything the CLI prints: reports as text or JSON on stdout, progress on stderr (only on a
//! terminal, never with `--format json`).
#![allow(clippy::print_stdout)]

use crate::cli::Format;
use crate::config::FileConfig;
use crate::runner::TargetRun;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;
use usersync_core::check::{ConnectionReport, Verdict};

fn tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A spinner for a phase with no known length (reading a directory).
pub struct Phase(Option<ProgressBar>, bool);

impl Phase {
    /// Starts a spinner when `show` and stderr is a terminal.
    pub fn start(show: bool, msg: &str) -> Self {
        if show && tty() {
            let pb = ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(120));
            pb.set_message(msg.to_string());
            Self(Some(pb), true)
        } else {
            Self(None, show)
        }
    }
    /// Ends the phase with a one-line summary (to stderr).
    pub fn finish(self, msg: String) {
        match self.0 {
            Some(pb) => pb.finish_with_message(msg),
            None if self.1 => eprintln!("{msg}"),
            None => {}
        }
    }
}

/// A progress bar over a plan's operations.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar of `len` operations when `show` and stderr is a terminal.
    pub fn new(show: bool, len: u64, msg: &str) -> Self {
        if show && tty() && len > 0 {
            let pb = ProgressBar::new(len);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
            {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_message(msg.to_string());
            Self(Some(pb))
        } else {
            Self(None)
        }
    }
    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl usersync_core::engine::Progress for Progress {
    fn on_outcome(
        &self,
        _: &usersync_core::plan::Operation,
        _: &usersync_core::plan::OpOutcome,
        _: usize,
        _: usize,
    ) {
        if let Some(pb) = &self.0 {
            pb.inc(1);
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot serialise output: {e}"),
    }
}

/// `config check` success.
pub fn config_ok(cfg: &FileConfig, path: &Path, format: Format) {
    match format {
        Format::Json => print_json(&serde_json::json!({
            "ok": true,
            "config": path.display().to_string(),
            "targets": cfg.targets.iter().map(|t| &t.name).collect::<Vec<_>>(),
        })),
        Format::Text => {
            println!("{}: OK", path.display());
            println!(
                "  source: {} (tenant {})",
                cfg.source.name, cfg.source.tenant_id
            );
            for t in &cfg.targets {
                println!("  target: {} ({} at {})", t.name, t.product, t.base_url);
            }
            println!("  data directory: {}", cfg.data_dir.display());
        }
    }
}

/// Test Connection results.
pub fn connection_reports(reports: &[ConnectionReport], format: Format) {
    if format == Format::Json {
        print_json(&reports);
        return;
    }
    for r in reports {
        println!("{}", r.subject);
        for c in &r.checks {
            let mark = match c.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "skip",
            };
            println!("  [{mark}] {}: {}", c.title, c.detail);
            if let Some(fix) = &c.fix {
                println!("         fix: {fix}");
            }
        }
        println!();
    }
}

/// Reports of a simulate/sync run.
pub fn run_reports(runs: &[TargetRun], format: Format) {
    match format {
        Format::Json => {
            let v: Vec<_> = runs.iter().map(|r| &r.report).collect();
            if v.len() == 1 {
                print_json(v[0]);
            } else {
                print_json(&v);
            }
        }
        Format::Text => {
            for r in runs {
                println!("== {} (run {})", r.target, r.run_id);
                println!("{}", r.report.to_text());
            }
        }
    }
}

/// `runs` list.
pub fn run_list(list: &[usersync_store::RunSummary], format: Format) {
    if format == Format::Json {
        print_json(&list);
        return;
    }
    if list.is_empty() {
        println!("no runs yet");
    }
    for r in list {
        println!("{}", one_line(r));
    }
}

/// `runs --show`.
pub fn run_record(run: &usersync_store::RunRecord, format: Format) {
    if format == Format::Json {
        print_json(run);
        return;
    }
    println!("{}", one_line(&run.summary));
    if let Some(a) = &run.summary.approval {
        println!(
            "approved: removals of held run {} approved by {} at {}",
            a.held_run,
            a.approved_by,
            when(a.approved_ms)
        );
    }
    if let Some(e) = &run.summary.error {
        println!("error: {e}");
    }
    match run
        .report
        .as_ref()
        .and_then(|v| serde_json::from_value::<usersync_core::report::Report>(v.clone()).ok())
    {
        Some(rep) => println!("{}", rep.to_text()),
        None if run.summary.error.is_none() => println!("(no report recorded)"),
        None => {}
    }
}

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// One run as a table line: id, start, mode, status, pair, duration.
fn one_line(r: &usersync_store::RunSummary) -> String {
    let took = r
        .finished_ms
        .map(|f| format!("{:.1}s", (f - r.started_ms) as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    let mut line = format!(
        "#{:<5} {}  {:<8} {:<16} {:<20} {}",
        r.id,
        when(r.started_ms),
        r.mode.as_str(),
        r.status.as_str(),
        r.pair,
        took
    );
    // The first line of a failure's reason, so the list says why.
    if let Some(e) = r.error.as_deref().and_then(|e| e.lines().next()) {
        line.push_str("  ");
        line.push_str(e);
    }
    line
}
