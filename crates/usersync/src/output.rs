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

/// Which rows `runs --show` prints.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Matching rows skipped.
    pub offset: u64,
    /// Rows per page.
    pub limit: u32,
    /// Every matching row (NDJSON without `--page`/`--offset`/`--limit`).
    pub all: bool,
}

/// One NDJSON line: a record tag plus the object's fields.
#[derive(serde::Serialize)]
struct Line<'a, T: serde::Serialize> {
    record: &'a str,
    #[serde(flatten)]
    value: T,
}

fn write_line<T: serde::Serialize>(
    out: &mut impl std::io::Write,
    record: &str,
    value: T,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, &Line { record, value })?;
    out.write_all(b"\n")?;
    Ok(())
}

/// `runs --show`: the run's summary, then its rows. Text: the summary and one page. JSON:
/// NDJSON, a `"record":"run"` line then one `"record":"item"` line per row, streamed from
/// the store page by page (never the whole report in memory). Runs recorded before rows print
/// their stored report (text) or one `"record":"report"` line (JSON).
pub async fn run_view(
    store: &usersync_store::Store,
    view: &usersync_store::RunView,
    filter: &usersync_store::ItemFilter,
    page: Page,
    format: Format,
) -> anyhow::Result<()> {
    let id = view.run.id;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    use std::io::Write as _;
    if format == Format::Json {
        write_line(&mut out, "run", view)?;
        if view.legacy {
            if let Some(rep) = store.legacy_report(id).await? {
                write_line(&mut out, "report", rep)?;
            }
        } else if page.all {
            store
                .for_each_run_item::<anyhow::Error>(id, filter, |it| {
                    write_line(&mut out, "item", it)
                })
                .await?;
        } else {
            for it in store.run_items(id, filter, page.offset, page.limit).await? {
                write_line(&mut out, "item", it)?;
            }
        }
        out.flush()?;
        return Ok(());
    }
    writeln!(out, "{}", one_line(&view.run))?;
    if let Some(a) = &view.run.approval {
        writeln!(
            out,
            "approved: removals of held run {} approved by {} at {}",
            a.held_run,
            a.approved_by,
            when(a.approved_ms)
        )?;
    }
    if let Some(e) = &view.run.error {
        writeln!(out, "error: {e}")?;
    }
    if view.legacy {
        // Recorded by an older version: the whole report is one document.
        match store
            .legacy_report(id)
            .await?
            .and_then(|v| serde_json::from_value::<usersync_core::report::Report>(v).ok())
        {
            Some(rep) => writeln!(out, "{}", rep.to_text())?,
            None => writeln!(out, "(the stored report is unreadable)")?,
        }
        out.flush()?;
        return Ok(());
    }
    let Some(rep) = &view.report else {
        if view.run.error.is_none() {
            writeln!(out, "(no plan recorded)")?;
        }
        out.flush()?;
        return Ok(());
    };
    writeln!(out, "{}", rep.to_text())?;
    // Totals without a search come from the summary's row counts (no count over the rows).
    let total = match (&filter.search, filter.kind) {
        (None, None) => rep.items.values().sum(),
        (None, Some(k)) => rep.items.get(&k).copied().unwrap_or(0),
        (Some(_), _) => store.count_run_items(id, filter).await?,
    };
    let items = store.run_items(id, filter, page.offset, page.limit).await?;
    let mut what = Vec::new();
    if let Some(k) = filter.kind {
        what.push(format!("kind {k}"));
    }
    if let Some(q) = &filter.search {
        what.push(format!("name contains {q:?}"));
    }
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({})", what.join(", "))
    };
    if items.is_empty() {
        writeln!(out, "Rows{what}: none of {total} at offset {}", page.offset)?;
    } else {
        writeln!(
            out,
            "Rows{what}: {}–{} of {total}",
            page.offset + 1,
            page.offset + items.len() as u64
        )?;
    }
    for it in &items {
        writeln!(out, "  {}", item_line(it))?;
    }
    let shown = page.offset + items.len() as u64;
    if shown < total {
        let next = shown / u64::from(page.limit) + 1;
        writeln!(
            out,
            "  … more: `usersync runs --show {id} --page {next}` (filter with --kind, --search; all rows: --format json)"
        )?;
    }
    out.flush()?;
    Ok(())
}

/// One row as a line: position, kind, subject, what changes, status, reason or error.
fn item_line(it: &usersync_core::items::RunItem) -> String {
    use usersync_core::items::ItemStatus;
    use usersync_core::plan::OpOutcome;
    let mut s = format!("#{:<6} {:<13} {}", it.seq, it.kind.as_str(), it.name);
    if let Some(g) = &it.group {
        s.push_str(&format!(" ∈ {g}"));
    }
    let d = &it.detail;
    if let Some(from) = &d.from {
        s.push_str(&format!(" (was {from})"));
    }
    if d.display_name.is_some() || d.email.is_some() {
        s.push_str(&format!(
            " ({} <{}>)",
            d.display_name.as_deref().unwrap_or(""),
            d.email.as_deref().unwrap_or("")
        ));
    }
    for c in &d.changes {
        let field = serde_json::to_value(c.field)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        s.push_str(&format!(" {field}: {:?} → {:?}", c.before, c.after));
    }
    if it.kind.is_op() && it.status != ItemStatus::Pending {
        s.push_str(&format!(" [{}]", it.status));
    }
    match &it.outcome {
        Some(OpOutcome::Failed { kind, message }) => s.push_str(&format!(" {kind:?}: {message}")),
        Some(OpOutcome::Skipped { reason }) => s.push_str(&format!(" {reason}")),
        _ => {
            if let Some(r) = &it.reason {
                s.push_str(&format!(" — {r}"));
            }
        }
    }
    s
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
