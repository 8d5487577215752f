//! usersync's end-to-end benchmark, run the way a new user would run usersync: the bundled
//! emulators in their own process (`usersync-emulators graph --size …` with 20 ms per Graph
//! request, `usersync-emulators atlassian --product jira` with 5 ms per request), the release
//! `usersync` binary as a child process per run, its peak RSS from `getrusage`, request counts
//! from the emulators' control APIs. Writes `bench/results.json` and `bench/results.md`.
//!
//! ```text
//! cargo run --release -p usersync-bench -- --sizes s,m,l
//! ```
//!
//! Scenarios per size: initial simulate, `runs --show` of it, initial sync (S and M), no-change
//! run, 1 % change (made through the Graph emulator's control API), full reconcile
//! (`sync --full`). At L only read, plan and memory are measured
//! (simulate), as an initial sync of 300k users would take hours at 5 ms per request.

mod child;
mod control;
mod minimum;
mod report;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

use child::{Emulator, dir_size, run_measured};
use control::{Control, Counts};
use minimum::Product;

/// usersync's end-to-end benchmark (S/M/L tenants against the emulators).
#[derive(Debug, Parser)]
#[command(name = "usersync-bench")]
struct Args {
    /// Tenant sizes to run, comma-separated: tiny, s (1k users), m (50k), l (300k).
    #[arg(long, value_delimiter = ',', default_value = "s,m,l")]
    sizes: Vec<String>,
    /// Target product.
    #[arg(long, value_enum, default_value_t = Product::Jira)]
    product: Product,
    /// Latency the Graph emulator adds to every request (ms).
    #[arg(long, default_value_t = 20)]
    graph_latency_ms: u64,
    /// Latency the Atlassian emulator adds to every request (ms).
    #[arg(long, default_value_t = 5)]
    target_latency_ms: u64,
    /// The target's `max_concurrency` (concurrent requests during the read and the apply).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Sync profile pictures too (Graph `$batch` photo look-ups and avatar uploads).
    #[arg(long)]
    photos: bool,
    /// Where `results.json` and `results.md` go.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// Scratch directory (configs, stores, logs, reports); each size starts from an empty one.
    #[arg(long, default_value = "target/usersync-bench")]
    work_dir: PathBuf,
    /// Directory holding the `usersync` and `usersync-emulators` binaries (default: this
    /// binary's own, after building them there).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the two binaries first.
    #[arg(long)]
    no_build: bool,
}

/// One measured run of the `usersync` binary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) size: String,
    pub(crate) scenario: String,
    /// The command line after `usersync --config … --format json`.
    pub(crate) command: String,
    pub(crate) exit_code: Option<i32>,
    /// From the report, when it has one.
    pub(crate) status: Option<String>,
    pub(crate) wall_s: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) graph: Counts,
    pub(crate) target: Counts,
    /// Theoretical minimum requests; see `minimum.rs` and results.md.
    pub(crate) graph_min: Option<u64>,
    pub(crate) target_reads_min: Option<u64>,
    pub(crate) target_writes_min: Option<u64>,
    /// Measured requests × latency ÷ concurrency, both sides (s).
    pub(crate) latency_bound_s: f64,
    pub(crate) ratio_to_bound: Option<f64>,
    /// From `run.timings` of the report, when present.
    pub(crate) source_read_s: Option<f64>,
    pub(crate) target_read_s: Option<f64>,
    pub(crate) plan_s: Option<f64>,
    pub(crate) apply_s: Option<f64>,
    /// Apply time ÷ (target writes × target latency ÷ concurrency).
    pub(crate) apply_ratio: Option<f64>,
    pub(crate) operations: Option<u64>,
    pub(crate) db_before_mb: f64,
    pub(crate) db_after_mb: f64,
    /// Bytes printed on stdout (the report, or `runs --show`).
    pub(crate) output_mb: f64,
    pub(crate) notes: Vec<String>,
}

/// Everything written to results.json.
#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) command: String,
    pub(crate) started_at: String,
    pub(crate) git_commit: Option<String>,
    pub(crate) machine: String,
    pub(crate) product: String,
    pub(crate) graph_latency_ms: u64,
    pub(crate) target_latency_ms: u64,
    pub(crate) concurrency: usize,
    pub(crate) photos: bool,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(child::MEASURE) {
        return child::measure_main(&argv[2..]);
    }
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args, argv.join(" ")))
}

fn bin_dir(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.bin_dir {
        return Ok(d.clone());
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("binary directory")?.to_path_buf();
    if !args.no_build {
        // The same profile as this binary, so both land next to it.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "usersync", "-p", "usersync-emulators"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        eprintln!("building usersync and usersync-emulators: {cmd:?}");
        let st = cmd.status().context("running cargo build")?;
        if !st.success() {
            bail!("cargo build failed ({st})");
        }
    }
    Ok(dir)
}

async fn run(args: Args, command: String) -> anyhow::Result<()> {
    let bins = bin_dir(&args)?;
    let usersync = bins.join("usersync");
    let emulators = bins.join("usersync-emulators");
    for b in [&usersync, &emulators] {
        if !b.exists() {
            bail!(
                "{} is missing: build it (`cargo build --release -p usersync -p usersync-emulators`) or pass --bin-dir",
                b.display()
            );
        }
    }
    let mut results = Results {
        command,
        started_at: now_rfc3339(),
        git_commit: git_commit(),
        machine: machine(),
        product: args.product.name().into(),
        graph_latency_ms: args.graph_latency_ms,
        target_latency_ms: args.target_latency_ms,
        concurrency: args.concurrency,
        photos: args.photos,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    results.notes.push(
        "full reconcile = `usersync sync --full` (full source read and full target reconcile)"
            .into(),
    );
    std::fs::create_dir_all(&args.out)?;
    for size in &args.sizes {
        let size = size.trim().to_lowercase();
        eprintln!("== size {size}");
        match run_size(&args, &size, &usersync, &emulators).await {
            Ok(rows) => results.rows.extend(rows),
            Err(e) => {
                eprintln!("size {size} failed: {e:#}");
                results.notes.push(format!("size {size} failed: {e:#}"));
            }
        }
        // Written after every size, so a long L run leaves the S and M figures behind.
        write_results(&args.out, &results)?;
    }
    eprintln!(
        "wrote {} and {}",
        args.out.join("results.json").display(),
        args.out.join("results.md").display()
    );
    Ok(())
}

fn write_results(out: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    std::fs::write(out.join("results.md"), report::markdown(results))?;
    Ok(())
}

/// State of one size's run: paths, emulators, control API.
struct Size<'a> {
    args: &'a Args,
    size: String,
    usersync: PathBuf,
    config: PathBuf,
    data: PathBuf,
    work: PathBuf,
    ctl: Control,
    tenant: (u64, u64, u64),
    step: usize,
}

async fn run_size(
    args: &Args,
    size: &str,
    usersync: &Path,
    emulators: &Path,
) -> anyhow::Result<Vec<Row>> {
    let work = args.work_dir.join(size);
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)?;
    eprintln!("starting the emulators (generating the {size} tenant)…");
    let graph = Emulator::start(
        emulators,
        &[
            "graph".into(),
            "--size".into(),
            size.into(),
            "--latency-ms".into(),
            args.graph_latency_ms.to_string(),
        ],
        work.join("graph-emulator.log"),
    )?;
    let target = Emulator::start(
        emulators,
        &[
            "atlassian".into(),
            "--product".into(),
            args.product.name().into(),
            "--latency-ms".into(),
            args.target_latency_ms.to_string(),
        ],
        work.join("target-emulator.log"),
    )?;
    let ctl = Control::new(
        graph.field("control_url")?,
        format!("{}/_emulator", target.field("base_url")?),
    );
    let tenant = ctl.graph_summary().await?;
    let config = work.join("usersync.toml");
    std::fs::write(work.join("entra-secret"), graph.field("client_secret")?)?;
    std::fs::write(work.join("target-secret"), args.product.secret())?;
    std::fs::write(
        &config,
        config_toml(args, &work, &graph, &target.field("base_url")?)?,
    )?;
    let mut s = Size {
        args,
        size: size.into(),
        usersync: usersync.to_path_buf(),
        data: work.join("data"),
        config,
        work,
        ctl,
        tenant,
        step: 0,
    };
    let l = size == "l";
    let mut rows = Vec::new();

    rows.push(
        s.scenario("initial simulate", &["simulate"], Kind::Initial)
            .await?,
    );
    if let Some(id) = s.last_run_id()? {
        rows.push(
            s.scenario(
                "runs --show (initial simulate)",
                &["runs", "--show", &id.to_string()],
                Kind::Show,
            )
            .await?,
        );
    }
    if l {
        rows.push(
            s.scenario("no-change simulate", &["simulate"], Kind::NoChange)
                .await?,
        );
        let changes = s.ctl.change_one_percent().await?;
        let mut r = s
            .scenario("1% change simulate", &["simulate"], Kind::Change)
            .await?;
        r.notes
            .push(format!("{} changes in Entra ID", changes.len()));
        rows.push(r);
    } else {
        rows.push(s.scenario("initial sync", &["sync"], Kind::Initial).await?);
        rows.push(
            s.scenario("no-change sync", &["sync"], Kind::NoChange)
                .await?,
        );
        let changes = s.ctl.change_one_percent().await?;
        let mut r = s
            .scenario("1% change sync", &["sync"], Kind::Change)
            .await?;
        r.notes.push(format!(
            "{} changes in Entra ID (renames, display names, disables, deletes, group adds)",
            changes.len()
        ));
        rows.push(r);
        rows.push(
            s.scenario("full reconcile", &["sync", "--full"], Kind::Full)
                .await?,
        );
    }
    drop((graph, target));
    Ok(rows)
}

/// What the theoretical minimum of a scenario is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// First run: full reads of both sides.
    Initial,
    /// Nothing changed: the deltas only, nothing from the target.
    NoChange,
    /// A small change: the deltas, and the touched objects from the target.
    Change,
    /// Full reconcile: full reads of both sides.
    Full,
    /// `runs --show`: no requests.
    Show,
}

impl Size<'_> {
    fn base_args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--format".into(),
            "json".into(),
        ]
    }

    /// The id of the latest run (`runs --limit 1`), unmeasured.
    fn last_run_id(&self) -> anyhow::Result<Option<i64>> {
        let out = std::process::Command::new(&self.usersync)
            .args(self.base_args())
            .args(["runs", "--limit", "1"])
            .output()?;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let first = match &v {
            Value::Array(a) => a.first(),
            Value::Object(o) => o
                .get("runs")
                .and_then(Value::as_array)
                .and_then(|a| a.first()),
            _ => None,
        };
        Ok(first.and_then(|r| r.get("id")).and_then(Value::as_i64))
    }

    async fn scenario(&mut self, name: &str, cmd: &[&str], kind: Kind) -> anyhow::Result<Row> {
        eprintln!("-- {} {name}: usersync {}", self.size, cmd.join(" "));
        self.step += 1;
        let prefix = self.work.join(format!("{:02}-{}", self.step, slug(name)));
        let target_before = self.ctl.target_state().await?;
        self.ctl.reset().await?;
        let db_before = dir_size(&self.data);
        let mut argv = self.base_args();
        argv.extend(cmd.iter().map(|s| s.to_string()));
        let m = run_measured(&self.usersync, &argv, &prefix)?;
        let graph = self.ctl.graph_counts().await?;
        let target = self.ctl.target_counts().await?;
        let db_after = dir_size(&self.data);
        let out_path = prefix.with_extension("out");
        let output_bytes = std::fs::metadata(&out_path).map(|m| m.len()).unwrap_or(0);
        let mut notes = Vec::new();
        if m.exit_code != Some(0) {
            let err = std::fs::read_to_string(prefix.with_extension("err")).unwrap_or_default();
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            notes.push(format!(
                "exit code {:?}: {}",
                m.exit_code,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        let report = if kind == Kind::Show {
            None
        } else {
            report::parse(&out_path)
        };
        if kind != Kind::Show && report.is_none() {
            notes.push("no JSON report on stdout".into());
        }
        let timing = |k: &str| -> Option<f64> {
            report
                .as_ref()?
                .pointer(&format!("/run/timings/{k}"))?
                .as_f64()
                .map(|ms| ms / 1000.0)
        };
        let ops = report.as_ref().and_then(report::operations);
        let applied = cmd.first() == Some(&"sync");
        let product = self.args.product;
        let target_writes_min = match kind {
            Kind::Show => Some(0),
            _ if !applied => Some(0),
            _ => ops
                .map(|o| minimum::writes(product, o))
                .or_else(|| minimum::writes_from_counts(product, report.as_ref()?.get("counts")?)),
        };
        let (tu, tg, tm) = self.tenant;
        // A run after another run of the same size (an initial sync after the simulate) may
        // read deltas only: its minimum follows the read the run made.
        let delta_read = report
            .as_ref()
            .and_then(|r| r.pointer("/run/source_read/mode"))
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("delta"));
        let graph_min = match kind {
            Kind::Show => Some(0),
            Kind::Initial | Kind::Full if delta_read => Some(minimum::GRAPH_NO_CHANGE),
            Kind::Initial | Kind::Full => Some(minimum::graph_full_read(tu, tg, tm)),
            Kind::NoChange => Some(minimum::GRAPH_NO_CHANGE),
            Kind::Change => ops.map(|o| minimum::graph_delta(o, tu, tg)),
        };
        let target_reads_min = match kind {
            Kind::Show | Kind::NoChange => Some(0),
            Kind::Initial | Kind::Full => Some(minimum::target_full_read(product, &target_before)),
            Kind::Change => ops.map(minimum::touched_objects),
        };
        let c = self.args.concurrency.max(1) as f64;
        let latency_bound_s = (graph.total as f64 * self.args.graph_latency_ms as f64
            / minimum::GRAPH_PARALLEL_READS
            + target.total as f64 * self.args.target_latency_ms as f64 / c)
            / 1000.0;
        let wall_s = m.wall_ms as f64 / 1000.0;
        let apply_s = timing("apply_ms");
        let apply_bound = target.writes as f64 * self.args.target_latency_ms as f64 / c / 1000.0;
        let row = Row {
            size: self.size.clone(),
            scenario: name.into(),
            command: cmd.join(" "),
            exit_code: m.exit_code,
            status: report
                .as_ref()
                .and_then(|r| r.pointer("/run/status"))
                .and_then(Value::as_str)
                .map(str::to_string),
            wall_s,
            peak_rss_mib: m.max_rss_kib as f64 / 1024.0,
            graph_min,
            target_reads_min,
            target_writes_min,
            latency_bound_s,
            ratio_to_bound: (latency_bound_s > 0.0).then(|| wall_s / latency_bound_s),
            source_read_s: timing("source_read_ms"),
            target_read_s: timing("target_read_ms"),
            plan_s: timing("plan_ms"),
            apply_s,
            apply_ratio: apply_s
                .filter(|_| applied && apply_bound > 0.0)
                .map(|a| a / apply_bound),
            operations: ops.map(|o| o.len() as u64).or_else(|| {
                report
                    .as_ref()?
                    .pointer("/outcomes/planned")
                    .and_then(Value::as_u64)
            }),
            db_before_mb: db_before as f64 / 1e6,
            db_after_mb: db_after as f64 / 1e6,
            output_mb: output_bytes as f64 / 1e6,
            graph,
            target,
            notes,
        };
        eprintln!(
            "   {:.2} s, peak RSS {:.0} MiB, Graph {} req, target {} req ({} writes), plan {}, DB {:.1} -> {:.1} MB",
            row.wall_s,
            row.peak_rss_mib,
            row.graph.total,
            row.target.total,
            row.target.writes,
            row.plan_s.map_or("?".into(), |p| format!("{p:.2} s")),
            row.db_before_mb,
            row.db_after_mb
        );
        // Reports of M and L runs are large: keep only the small ones.
        if output_bytes > 20_000_000 {
            let _ = std::fs::remove_file(&out_path);
        }
        Ok(row)
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn config_toml(
    args: &Args,
    work: &Path,
    graph: &Emulator,
    target_url: &str,
) -> anyhow::Result<String> {
    let access = args
        .product
        .licence_group()
        .map(|g| format!("access_groups = [\"{g}\"]\n"))
        .unwrap_or_default();
    Ok(format!(
        r#"# Written by usersync-bench: Entra ID and {product} are the emulators (plain HTTP on 127.0.0.1).
data_dir = "{work}/data"

[source]
name = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = {{ file = "{work}/entra-secret" }}
login_url = "{login}"
graph_url = "{graph_url}"
sync_photos = {photos}
allow_insecure_http = true

[[target]]
name = "{product}"
product = "{product}"
base_url = "{target_url}"
{auth}
secret = {{ file = "{work}/target-secret" }}
max_concurrency = {concurrency}
allow_insecure_http = true

[target.sync.scope]
flatten_nested = true

[target.sync.policy]
{access}protected_accounts = ["admin"]
"#,
        product = args.product.name(),
        work = work.display(),
        tenant = graph.field("tenant_id")?,
        client = graph.field("client_id")?,
        login = graph.field("login_url")?,
        graph_url = graph.field("graph_url")?,
        photos = args.photos,
        auth = args.product.auth_line(),
        concurrency = args.concurrency,
    ))
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    // Other work on the machine slows every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!("{cpu}, {cores} cores, {mem} RAM, load average {load} at the start")
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| String::new(), |t| t.to_string())
}
