//! Reading the `usersync --format json` output, and writing results.md.

use crate::{Results, Row};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The run's report from stdout: one JSON document (an object, or an array of reports), or
/// JSON lines (a streamed report) whose first object with a `run` member is taken.
pub(crate) fn parse(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let pick = |v: Value| match v {
        Value::Array(mut a) if !a.is_empty() => Some(a.swap_remove(0)),
        Value::Object(_) => Some(v),
        _ => None,
    };
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return pick(v);
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(pick)
        .find(|v| v.get("run").is_some())
}

/// The report's operations, when it lists them.
pub(crate) fn operations(report: &Value) -> Option<&[Value]> {
    report
        .get("operations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| format!("{s:.2}"))
}

fn find<'a>(r: &'a Results, size: &str, scenario: &str) -> Option<&'a Row> {
    r.rows
        .iter()
        .find(|x| x.size == size && x.scenario == scenario)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// results.md: the issue-8 table with these figures, every scenario, and how it is computed.
pub(crate) fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# usersync benchmark results\n");
    let _ = writeln!(
        s,
        "Command: `{}` · started {} · commit {} · {}\n",
        r.command,
        r.started_at,
        r.git_commit.as_deref().unwrap_or("?"),
        r.machine
    );
    let _ = writeln!(
        s,
        "Emulators in their own process: Graph with {} ms per request, {} with {} ms per request; \
         target `max_concurrency = {}`; profile pictures {}. Peak RSS is the `usersync` process's \
         own (`getrusage(RUSAGE_CHILDREN)` of a process whose only child is the run).\n",
        r.graph_latency_ms,
        r.product,
        r.target_latency_ms,
        r.concurrency,
        if r.photos { "on" } else { "off" }
    );

    let _ = writeln!(s, "## Issue 8's table\n");
    let _ = writeln!(s, "| what | measured | goal | |\n|---|---|---|---|");
    if let Some(x) = find(r, "l", "initial simulate") {
        let _ = writeln!(
            s,
            "| L `usersync simulate` into an empty {} | {} Graph requests, {:.0} MiB peak RSS, {:.1} s, plan {} s, {} | succeeds; ≤ 512 MiB; plan ≤ 2 s | {} |",
            r.product,
            x.graph.total,
            x.peak_rss_mib,
            x.wall_s,
            secs(x.plan_s),
            outcome(x),
            verdict(Some(
                x.exit_code == Some(0)
                    && x.peak_rss_mib <= 512.0
                    && x.plan_s.is_some_and(|p| p <= 2.0)
            ))
        );
    }
    if let Some(x) = find(r, "m", "initial simulate") {
        let _ = writeln!(
            s,
            "| M `usersync simulate` | {:.0} MiB peak RSS, {:.1} s, database +{:.1} MB, {} | ≤ 256 MiB; the stored run ≤ 10 % of 400 MB | {} |",
            x.peak_rss_mib,
            x.wall_s,
            x.db_after_mb - x.db_before_mb,
            outcome(x),
            verdict(Some(
                x.exit_code == Some(0)
                    && x.peak_rss_mib <= 256.0
                    && x.db_after_mb - x.db_before_mb <= 40.0
            ))
        );
    }
    for size in ["m", "l"] {
        if let Some(x) = find(r, size, "runs --show (initial simulate)") {
            let _ = writeln!(
                s,
                "| `usersync runs --show` after the {} simulate | {:.2} s, {:.0} MiB, {:.1} MB printed | first page ≤ 200 ms and ≤ 64 MiB at L | {} |",
                size.to_uppercase(),
                x.wall_s,
                x.peak_rss_mib,
                x.output_mb,
                if size == "l" {
                    verdict(Some(x.wall_s <= 0.2 && x.peak_rss_mib <= 64.0))
                } else {
                    "(L is the goal)"
                }
            );
        }
    }
    if let Some(x) = find(r, "m", "no-change sync") {
        let _ = writeln!(
            s,
            "| no-change run at M into {} | {} Graph requests, {} target reads, {} writes, {:.1} s | ≤ 3 Graph requests and a small constant number of target requests | {} |",
            r.product,
            x.graph.total,
            x.target.total - x.target.writes,
            x.target.writes,
            x.wall_s,
            verdict(Some(x.graph.total <= 3 && x.target.total <= 10))
        );
    }
    if let Some(x) = find(r, "s", "1% change sync") {
        let _ = writeln!(
            s,
            "| 1 % change at S into {} | {} Graph + {} target reads (minimum {}) + {} writes (minimum {}) | reads proportional to the change, writes = minimum | {} |",
            r.product,
            x.graph.total,
            x.target.total - x.target.writes,
            opt(x.target_reads_min),
            x.target.writes,
            opt(x.target_writes_min),
            verdict(x.target_writes_min.zip(x.target_reads_min).map(|(w, rd)| {
                x.target.writes <= w && x.target.total - x.target.writes <= rd.max(1) * 3
            }))
        );
    }
    if let Some(x) = find(r, "s", "initial sync") {
        let _ = writeln!(
            s,
            "| initial apply at S, {} ms per request, concurrency {} | {} writes in {} s = {} × the latency bound ({} × {} ms ÷ {}) | ≤ 1.2 × | {} |",
            r.target_latency_ms,
            r.concurrency,
            x.target.writes,
            secs(x.apply_s),
            x.apply_ratio.map_or("–".into(), |v| format!("{v:.2}")),
            x.target.writes,
            r.target_latency_ms,
            r.concurrency,
            verdict(x.apply_ratio.map(|v| v <= 1.2))
        );
    }

    let _ = writeln!(s, "\n## Every scenario\n");
    let _ = writeln!(
        s,
        "| size | scenario | wall s | Graph req (min) | target reads (min) | target writes (min) | latency bound s | × bound | plan s | apply s | apply × bound | peak RSS MiB | DB MB before → after | status |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for x in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {} ({}) | {} ({}) | {} ({}) | {:.2} | {} | {} | {} | {} | {:.0} | {:.1} → {:.1} | {} |",
            x.size.to_uppercase(),
            x.scenario,
            x.wall_s,
            x.graph.total,
            opt(x.graph_min),
            x.target.total - x.target.writes,
            opt(x.target_reads_min),
            x.target.writes,
            opt(x.target_writes_min),
            x.latency_bound_s,
            x.ratio_to_bound.map_or("–".into(), |v| format!("{v:.2}")),
            secs(x.plan_s),
            secs(x.apply_s),
            x.apply_ratio.map_or("–".into(), |v| format!("{v:.2}")),
            x.peak_rss_mib,
            x.db_before_mb,
            x.db_after_mb,
            outcome(x),
        );
    }
    let notes: Vec<String> = r
        .rows
        .iter()
        .flat_map(|x| {
            x.notes
                .iter()
                .map(move |n| format!("{} {}: {n}", x.size.to_uppercase(), x.scenario))
        })
        .chain(r.notes.iter().cloned())
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let _ = writeln!(
        s,
        "\n## How the figures are computed\n\n\
         - **Requests** come from the emulators' counters (`/_emulator/stats`), reset before each run; \
         Graph counts every HTTP request (token included, a `$batch` once); target reads are GETs, writes \
         the other methods.\n\
         - **Graph minimum**: a full read is 1 token + ⌈users ÷ 100⌉ users-delta pages + max(⌈groups ÷ 100⌉, \
         ⌈memberships ÷ 500⌉) groups-delta pages (the emulator's page sizes, which the server chooses); a \
         no-change run is 3 (token, one users-delta and one groups-delta request); a small change is 1 + \
         one page per 100 changed users + one per 100 changed groups (changed objects estimated from the \
         plan).\n\
         - **Target reads minimum**: a full read (initial, full reconcile) is the user pages + the group \
         pages + per group its member pages at the product's largest page sizes (Jira: 1,000 users, all \
         groups in one request, 50 members); a no-change run is 0 (nothing changed, nothing to read); a \
         small change is one read per account and per group the plan touches.\n\
         - **Target writes minimum**: one per planned operation, one per user for membership adds (per \
         500 with Bitbucket's batch add), none for adoptions, for (de)activations on a product that \
         cannot deactivate and for avatars on a product without them; 0 for a simulate.\n\
         - **Latency bound** = Graph requests × Graph latency ÷ 2 (the users and groups delta chains are \
         read side by side; within a chain each page's link comes from the previous one) + target \
         requests × target latency ÷ concurrency, using the measured request counts; **× bound** is \
         the wall time over it (process start, SQLite and our own CPU make up the rest).\n\
         - **Apply × bound** = the apply's wall time (`run.timings.apply_ms` of the report) ÷ (target \
         writes × target latency ÷ concurrency), issue 8's definition.\n\
         - **Plan s** is `run.timings.plan_ms` of the report; **DB** the size of the data directory \
         (database, WAL and shared memory files) before and after the run."
    );
    s
}

fn outcome(x: &Row) -> String {
    match (&x.status, x.exit_code) {
        (Some(st), _) => st.clone(),
        (None, Some(0)) => "ok".into(),
        (None, Some(c)) => format!("exit {c}"),
        (None, None) => "killed".into(),
    }
}
