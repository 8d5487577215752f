//! One sync run, wired together: read the source (incrementally), read each target, plan,
//! simulate or apply, record the run. The CLI and the demo call this; the scheduler will too.

use crate::cli::{Format, RunsArgs};
use crate::config::{FileConfig, SourceConfig, TargetConfig, resolve_secret};
use crate::exit::{self, Code};
use crate::output;
use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use usersync_connectors::atlassian::{self, AtlassianAuth, AtlassianTargetConfig, Product};
use usersync_connectors::graph::{
    self, GraphCloud, GraphCredential, GraphSource, GraphSourceConfig,
};
use usersync_core::items::ItemKind;
use usersync_core::plan::approval::{Removal, apply_approval, removals};
use usersync_core::plan::{Plan, PlanInput, plan};
use usersync_core::ports::SourceDirectory;
use usersync_core::report::{Report, RunTimings};
use usersync_core::run::{RunMode, RunStatus};
use usersync_store::{ItemFilter, Lease, Store, StoreError};

/// How long a pair's lease lasts unless renewed (renewed every third of it while the run
/// lasts). `USERSYNC_LEASE_TTL_MS` overrides it (tests use a short one).
const LEASE_TTL_MS: i64 = 60_000;

/// What a run does.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Apply (sync) rather than simulate.
    pub apply: bool,
    /// Ignore saved delta state.
    pub full: bool,
    /// Apply the removals this held run listed (`--approve RUN`), and no others.
    pub approve: Option<i64>,
    /// Who approves (`--approved-by`, else the OS user), recorded with the approval.
    pub approved_by: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Initialise an existing empty database file as a new store (`--init-store`).
    pub init_store: bool,
}

impl RunOptions {
    /// How the run is recorded in the history.
    fn mode(&self) -> RunMode {
        if self.apply {
            RunMode::Sync
        } else {
            RunMode::Simulate
        }
    }
}

/// The outcome of one target's run, for callers that want more than the exit code (the demo).
#[derive(Debug)]
pub struct TargetRun {
    /// Target name.
    pub target: String,
    /// The run's id in the store.
    pub run_id: i64,
    /// The report.
    pub report: Report,
    /// Exit code this run implies.
    pub code: Code,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Builds the Graph connector's settings from the file.
pub fn source_config(s: &SourceConfig) -> anyhow::Result<GraphSourceConfig> {
    let credential = match (&s.client_secret, &s.certificate_file, &s.private_key) {
        (Some(secret), _, _) => {
            GraphCredential::Secret(resolve_secret(secret, "source.client_secret")?)
        }
        (None, Some(cert), Some(key)) => {
            let cert_pem = std::fs::read_to_string(cert).with_context(|| {
                format!(
                    "source.certificate_file: cannot read {} — check the path",
                    cert.display()
                )
            })?;
            GraphCredential::Certificate {
                cert_pem,
                key_pem: resolve_secret(key, "source.private_key")?,
                algorithm: Default::default(),
            }
        }
        _ => return Err(exit::config_err("source: no credential configured")),
    };
    let mut cfg = GraphSourceConfig::new(&s.tenant_id, &s.client_id, credential);
    cfg.cloud = match (s.cloud.as_deref(), &s.login_url, &s.graph_url) {
        (_, Some(login_url), Some(graph_url)) => GraphCloud::Custom {
            login_url: login_url.trim_end_matches('/').to_string(),
            graph_url: graph_url.trim_end_matches('/').to_string(),
            scope: None,
        },
        (_, Some(_), None) | (_, None, Some(_)) => {
            return Err(exit::config_err(
                "source.login_url / source.graph_url: set both, or neither (and use source.cloud)",
            ));
        }
        (None | Some("global"), None, None) => GraphCloud::Global,
        (Some("us_gov_l4"), None, None) => GraphCloud::UsGovL4,
        (Some("us_gov_l5"), None, None) => GraphCloud::UsGovL5Dod,
        (Some("china"), None, None) => GraphCloud::China,
        (Some(other), None, None) => {
            return Err(exit::config_err(format!(
                "source.cloud: unknown cloud `{other}`"
            )));
        }
    };
    cfg.read_photos = s.sync_photos;
    if let Some(h) = s.full_reconcile_every_hours {
        cfg.full_reconcile_every_hours = h;
    }
    if let Some(d) = s.secret_expiry_warning_days {
        cfg.secret_expiry_warn_days = d;
    }
    if let Some(c) = s.max_concurrency {
        cfg.max_concurrency = c.max(1);
    }
    cfg.scope_group_ids = s.scope_group_ids.clone();
    s.retry.apply(&mut cfg.retry);
    Ok(cfg)
}

/// Builds an Atlassian target's settings from the file.
pub fn target_config(t: &TargetConfig) -> anyhow::Result<AtlassianTargetConfig> {
    let field = format!("target {}.secret", t.name);
    let product = match t.product.as_str() {
        "jira" => Product::Jira,
        "confluence" => Product::Confluence,
        "bitbucket" => Product::Bitbucket,
        "crowd" => Product::Crowd,
        other => {
            return Err(exit::config_err(format!(
                "target {}.product: unknown product `{other}`",
                t.name
            )));
        }
    };
    let secret = t
        .secret
        .as_ref()
        .map(|s| resolve_secret(s, &field))
        .transpose()?;
    let secret = secret.ok_or_else(|| exit::config_err(format!("{field}: missing")))?;
    let username = t.username.clone().unwrap_or_default();
    let auth = match t.auth.as_str() {
        "bearer" => AtlassianAuth::Bearer { token: secret },
        "basic" => AtlassianAuth::Basic {
            username,
            password: secret,
        },
        _ => AtlassianAuth::CrowdApp {
            name: username,
            password: secret,
        },
    };
    let mut cfg = AtlassianTargetConfig::new(product, &t.base_url, auth);
    cfg.ca_bundle = t.ca_bundle.clone();
    if let Some(c) = t.max_concurrency {
        cfg.max_concurrency = c.max(1);
    }
    if let Some(s) = t.timeout_secs {
        cfg.timeout = Duration::from_secs(s);
    }
    cfg.jira_application_keys = t.jira_application_keys.clone();
    cfg.bitbucket_add_to_default_group = t.bitbucket_add_to_default_group;
    t.retry.apply(&mut cfg.retry);
    Ok(cfg)
}

/// Reads every secret the file references (for `config check`).
pub fn resolve_all_secrets(cfg: &FileConfig) -> anyhow::Result<()> {
    source_config(&cfg.source).map_err(|e| exit::config_err(exit::render(&e)))?;
    for t in &cfg.targets {
        target_config(t).map_err(|e| exit::config_err(exit::render(&e)))?;
    }
    Ok(())
}

fn selected<'a>(
    cfg: &'a FileConfig,
    target: Option<&str>,
) -> anyhow::Result<Vec<&'a TargetConfig>> {
    match target {
        None => Ok(cfg.targets.iter().collect()),
        Some(name) => {
            let t = cfg
                .targets
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let names: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
                    exit::config_err(format!(
                        "--target {name}: no such target; configured: {}",
                        names.join(", ")
                    ))
                })?;
            Ok(vec![t])
        }
    }
}

/// Opens the store and marks runs whose process is gone (lease expired) as interrupted; the
/// store logs how many.
pub(crate) async fn open_store(cfg: &FileConfig, init: bool) -> anyhow::Result<Store> {
    let store = if init {
        Store::initialise(&cfg.data_dir).await
    } else {
        Store::open(&cfg.data_dir).await
    }
    .map_err(|e| exit::config_err(format!("data_dir: {e}")))?;
    store.mark_interrupted_runs().await?;
    Ok(store)
}

fn lease_ttl_ms() -> i64 {
    std::env::var("USERSYNC_LEASE_TTL_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 500)
        .unwrap_or(LEASE_TTL_MS)
}

/// This process as a lease owner: `host:pid:nonce`.
fn owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    // The nonce tells apart two owners that reuse a pid (a restarted container).
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &nonce[..8])
}

/// Who approves: `--approved-by`, else the OS user.
fn approver(opts: &RunOptions) -> String {
    opts.approved_by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The held run an approval refers to: its pair's target name and the removals it listed.
async fn load_approval(
    store: &Store,
    cfg: &FileConfig,
    id: i64,
) -> anyhow::Result<(String, Vec<Removal>)> {
    let rec = store
        .run_view(id)
        .await?
        .ok_or_else(|| exit::config_err(format!("--approve {id}: no run with that id")))?;
    if rec.run.status != RunStatus::Held {
        return Err(exit::config_err(format!(
            "--approve {id}: run {id} is {}, not held — only a held run can be approved",
            rec.run.status
        )));
    }
    let prefix = format!("{}->", cfg.source.name);
    let target = rec
        .run
        .pair
        .strip_prefix(&prefix)
        .filter(|t| cfg.targets.iter().any(|c| c.name == *t))
        .ok_or_else(|| {
            exit::config_err(format!(
                "--approve {id}: run {id} belongs to {}, which is not in this configuration",
                rec.run.pair
            ))
        })?
        .to_string();
    let ops = store
        .run_operations(id, &ItemKind::REMOVALS)
        .await?
        .ok_or_else(|| exit::config_err(format!("--approve {id}: no plan was recorded")))?;
    let held = Plan {
        ops,
        ..Plan::default()
    };
    Ok((target, removals(&held)))
}

/// `test-connection`: the source, then each selected target.
pub async fn test_connection(
    cfg: &FileConfig,
    target: Option<&str>,
    format: Format,
) -> anyhow::Result<Code> {
    let mut reports = Vec::new();
    let scfg = source_config(&cfg.source)?;
    reports.push(graph::test_connection(&scfg).await);
    for t in selected(cfg, target)? {
        let tcfg = target_config(t)?;
        reports.push(atlassian::test_connection(&tcfg).await);
    }
    output::connection_reports(&reports, format);
    Ok(if reports.iter().all(|r| r.ok()) {
        Code::Success
    } else {
        Code::Connection
    })
}

/// `simulate` / `sync`: one source read, then one plan (and apply) per target.
pub async fn run(cfg: &FileConfig, opts: &RunOptions, format: Format) -> anyhow::Result<Code> {
    let collected = run_collect(cfg, opts, format != Format::Json).await?;
    output::run_reports(&collected.runs, format);
    let mut code = collected
        .runs
        .iter()
        .map(|r| r.code)
        .max()
        .unwrap_or(Code::Success);
    for e in &collected.failures {
        eprintln!("error: {}", exit::render(e));
        code = code.max(exit::classify(e));
    }
    Ok(code)
}

/// One pair's run in progress: its lease and its row in the history.
struct Started<'a> {
    target: &'a TargetConfig,
    pair: String,
    lease: Lease,
    run_id: i64,
    started_ms: i64,
}

/// The runs of one invocation: one per target that could be run, and the errors of those that
/// could not (each is also recorded in the run history as failed, so nothing fails silently).
#[derive(Debug)]
pub struct Collected {
    /// Completed runs.
    pub runs: Vec<TargetRun>,
    /// Targets that failed before a report could be made (unreachable, bad credentials…).
    pub failures: Vec<anyhow::Error>,
}

/// Like [`run`], returning the reports instead of printing them. One target failing does not
/// stop the others. Each pair's lease is taken and its run recorded before the source read, so
/// a failed read is in the history (and its time counted) too; a pair whose lease another run
/// holds is refused (not recorded: it never started).
pub async fn run_collect(
    cfg: &FileConfig,
    opts: &RunOptions,
    progress: bool,
) -> anyhow::Result<Collected> {
    let store = open_store(cfg, opts.init_store).await?;
    let approval = match opts.approve {
        Some(id) => {
            let (target, approved) = load_approval(&store, cfg, id).await?;
            if let Some(t) = &opts.target
                && !t.eq_ignore_ascii_case(&target)
            {
                return Err(exit::config_err(format!(
                    "--approve {id}: run {id} is of target {target}, not --target {t}"
                )));
            }
            Some((id, target, approved))
        }
        None => None,
    };
    let target_sel = approval
        .as_ref()
        .map(|(_, t, _)| t.as_str())
        .or(opts.target.as_deref());
    let targets = selected(cfg, target_sel)?;
    let mut out = Collected {
        runs: Vec::new(),
        failures: Vec::new(),
    };
    let owner = owner_id();
    let ttl = lease_ttl_ms();
    let mut started = Vec::new();
    for t in targets {
        let pair = format!("{}->{}", cfg.source.name, t.name);
        let now = now_ms();
        let lease = match store.acquire_lease(&pair, &owner, ttl, now).await {
            Ok(l) => l,
            Err(e @ StoreError::LeaseHeld { .. }) => {
                out.failures.push(exit::busy_err(e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match store.start_leased_run(&lease, opts.mode(), now).await {
            Ok(run_id) => started.push(Started {
                target: t,
                pair,
                lease,
                run_id,
                started_ms: now,
            }),
            Err(e) => {
                let _ = store.release_lease(&lease).await;
                out.failures.push(e.into());
            }
        }
    }
    if started.is_empty() {
        return Ok(out);
    }
    // Renew every lease while the runs last; a lost lease is logged, and the run's finish is
    // refused by the fencing token (journal writes are not fenced yet).
    let renewer = {
        let store = store.clone();
        let leases: Vec<Lease> = started.iter().map(|s| s.lease.clone()).collect();
        tokio::spawn(async move {
            let every = Duration::from_millis(u64::try_from(ttl / 3).unwrap_or(1000).max(100));
            loop {
                tokio::time::sleep(every).await;
                for l in &leases {
                    if let Err(e) = store.renew_lease(l, ttl, now_ms()).await {
                        tracing::error!(pair = %l.pair, error = %e, "could not renew the lease");
                    }
                }
            }
        })
    };
    let approved_by = approver(opts);
    let result = run_started(
        cfg,
        &store,
        opts,
        progress,
        &started,
        approval
            .as_ref()
            .map(|(id, _, r)| (*id, r.as_slice(), approved_by.as_str())),
        &mut out,
    )
    .await;
    renewer.abort();
    for s in &started {
        if let Err(e) = store.release_lease(&s.lease).await {
            tracing::warn!(pair = %s.pair, error = %e, "could not release the lease; it expires by itself");
        }
    }
    result.map(|()| out)
}

/// Reads the source once, then plans (and applies) each started pair. Every started run ends
/// recorded: with its report, or failed with the reason.
async fn run_started(
    cfg: &FileConfig,
    store: &Store,
    opts: &RunOptions,
    progress: bool,
    started: &[Started<'_>],
    approval: Option<(i64, &[Removal], &str)>,
    out: &mut Collected,
) -> anyhow::Result<()> {
    let source_name = cfg.source.name.clone();
    let t0 = Instant::now();
    let read = read_source(cfg, store, opts, progress).await;
    let source_ms = t0.elapsed().as_millis() as u64;
    let (source, read, changes) = match read {
        Ok(r) => r,
        Err(e) => {
            for s in started {
                record_failed_run(store, s, &e).await;
            }
            out.failures.push(e);
            return Ok(());
        }
    };
    if read.snapshot.complete
        && let Err(e) = store
            .save_source_state(&source_name, &read.next_state)
            .await
    {
        tracing::warn!(error = %e, "could not save the source sync state; the next read is a full read");
    }
    for s in started {
        match run_target(
            cfg,
            s,
            store,
            source.as_ref(),
            &read,
            source_ms,
            changes.as_ref(),
            opts,
            progress,
            approval,
        )
        .await
        {
            Ok(r) => out.runs.push(r),
            Err(e) => {
                record_failed_run(store, s, &e).await;
                out.failures.push(e);
            }
        }
    }
    Ok(())
}

/// Reads the source (incrementally unless `--full`).
async fn read_source(
    cfg: &FileConfig,
    store: &Store,
    opts: &RunOptions,
    progress: bool,
) -> anyhow::Result<(
    Arc<GraphSource>,
    usersync_core::ports::SourceRead,
    Option<crate::target_read::SourceChanges>,
)> {
    let source_name = &cfg.source.name;
    let source = Arc::new(
        GraphSource::new(source_config(&cfg.source)?)
            .map_err(|e| exit::connection_err(format!("source: {e}")))?,
    );
    let bar = output::Phase::start(progress, "reading Entra ID");
    let t0 = Instant::now();
    let state = if opts.full {
        None
    } else {
        store.source_state(source_name).await?
    };
    // Digests of the saved snapshot, to tell which users and groups a delta read changed (an
    // incremental target read reads only their accounts and groups).
    let digests = state
        .as_ref()
        .and_then(|s| s.snapshot.as_ref())
        .map(|s| crate::target_read::SourceDigests::of(s));
    let read = source
        .read(state)
        .await
        .map_err(|e| exit::connection_err(format!("source {source_name}: {e}")))?;
    let changes = match (&digests, read.stats.mode) {
        (Some(d), usersync_core::ports::ReadMode::Delta) => Some(d.changes(&read.snapshot)),
        _ => None,
    };
    bar.finish(format!(
        "read Entra ID: {} users, {} groups ({}, {} requests, {:.1}s)",
        read.snapshot.users.len(),
        read.snapshot.groups.len(),
        read.stats.mode,
        read.stats.requests,
        t0.elapsed().as_secs_f64()
    ));
    Ok((source, read, changes))
}

/// Ends a started run as failed, with the reason, so nothing fails silently.
async fn record_failed_run(store: &Store, s: &Started<'_>, e: &anyhow::Error) {
    if let Err(err) = store.fail_run(s.run_id, &exit::render(e), now_ms()).await {
        tracing::warn!(pair = %s.pair, error = %err, "could not record the failed run");
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_target(
    cfg: &FileConfig,
    s: &Started<'_>,
    store: &Store,
    source: &GraphSource,
    read: &usersync_core::ports::SourceRead,
    source_ms: u64,
    changes: Option<&crate::target_read::SourceChanges>,
    opts: &RunOptions,
    progress: bool,
    approval: Option<(i64, &[Removal], &str)>,
) -> anyhow::Result<TargetRun> {
    let ms = |t: Instant| t.elapsed().as_millis() as u64;
    let t = s.target;
    let pair = &s.pair;
    let run_id = s.run_id;
    let tcfg = target_config(t)?;
    let target = atlassian::build_target(&tcfg)
        .map_err(|e| exit::connection_err(format!("target {}: {e}", t.name)))?;
    let caps = target.capabilities();
    let bar = output::Phase::start(progress, &format!("reading {}", t.name));
    let t_read = Instant::now();
    let links = store.links(pair).await?;
    let crate::target_read::Prepared {
        state: mut target_state,
        snapshot,
        stats: target_read,
    } = crate::target_read::prepare(crate::target_read::Ctx {
        store,
        pair,
        target: target.as_ref(),
        config: t,
        forced: opts.full,
        source_delta: read.stats.mode == usersync_core::ports::ReadMode::Delta,
        source_changes: changes,
        source: &read.snapshot,
        links: &links,
        now_ms: now_ms(),
    })
    .await?;
    bar.finish(format!(
        "read {} ({}): {} accounts, {} groups ({})",
        t.name,
        caps.product,
        snapshot.accounts.len(),
        snapshot.groups.len(),
        target_read.mode
    ));
    let target_read_ms = ms(t_read);
    let settings = t.sync.clone();
    let input = PlanInput {
        source: &read.snapshot,
        target: &snapshot,
        links: &links,
        settings: &settings,
        capabilities: &caps,
        now_ms: now_ms(),
    };
    let t_plan = Instant::now();
    let mut the_plan = plan(&input);
    let plan_ms = ms(t_plan);
    tracing::info!(
        target = %t.name,
        ops = the_plan.ops.len(),
        ms = plan_ms,
        "planned"
    );
    if let Some((held_run, approved, approved_by)) = approval {
        the_plan = apply_approval(the_plan, held_run, approved);
        // Audited: who approved which held run, on the run that acted on it.
        store
            .record_approval(run_id, held_run, approved_by, now_ms())
            .await?;
    }
    store
        .save_plan(run_id, &the_plan, opts.mode(), cfg.runs.store_unchanged)
        .await?;

    let t_apply = Instant::now();
    let applied = opts.apply && the_plan.held.is_none();
    drop(snapshot);
    let mut report = if applied {
        if !the_plan.ops.is_empty() {
            // Not clean until the apply has finished cleanly: a killed or failed apply makes
            // the next run a full reconcile.
            store.set_target_state_clean(pair, false).await?;
        }
        let store_journal = store.journal(pair, run_id, s.started_ms);
        let journal = crate::target_read::RecordingJournal::new(&store_journal);
        let observed = crate::target_read::observing(target.as_ref());
        let bar = output::Progress::new(
            progress,
            the_plan.ops.len() as u64,
            &format!("applying to {}", t.name),
        );
        let opts = usersync_core::engine::ApplyOptions {
            max_concurrency: caps.max_concurrency,
        };
        let result =
            usersync_core::engine::apply(&the_plan, &observed, source, &journal, &opts, &bar).await;
        bar.finish();
        if !the_plan.ops.is_empty() {
            crate::target_read::after_apply(
                store,
                pair,
                &mut target_state,
                observed.take(),
                journal.take(),
                result.outcomes.failed == 0 && result.stopped.is_none(),
            )
            .await;
        }
        result
    } else {
        usersync_core::engine::simulate(&the_plan)
    };
    let status = RunStatus::of_outcome(
        the_plan.held.is_some(),
        report.stopped.is_some(),
        report.outcomes.failed,
        the_plan.source_complete,
    );
    report.run.connector = Some(pair.clone());
    report.run.source_read = Some(read.stats.clone());
    report.run.target_read = Some(target_read);
    report.run.started_at = Some(rfc3339(s.started_ms));
    report.run.finished_at = Some(rfc3339(now_ms()));
    report.run.status = Some(status);
    report.run.timings = Some(RunTimings {
        source_read_ms: source_ms,
        target_read_ms,
        plan_ms,
        apply_ms: if applied { ms(t_apply) } else { 0 },
    });
    if !read.snapshot.complete {
        report.source_failures = read.snapshot.warnings.clone();
    }
    let code = exit::Code::of(status, report.stopped.is_some());
    store.finish_run(run_id, status, &report, now_ms()).await?;
    // Retention: pruned at each finish, so the history never grows past the setting.
    if let Err(e) = store.prune_runs(cfg.runs.retention(), now_ms()).await {
        tracing::warn!(error = %e, "could not prune the run history");
    }
    Ok(TargetRun {
        target: t.name.clone(),
        run_id,
        report,
        code,
    })
}

/// `runs`: history, or one run's summary and rows (a page, or an NDJSON stream).
pub async fn runs(
    cfg: &FileConfig,
    a: &RunsArgs,
    format: Format,
    init: bool,
) -> anyhow::Result<Code> {
    let store = open_store(cfg, init).await?;
    if let Some(id) = a.show {
        let kind = a
            .kind
            .as_deref()
            .map(|k| {
                k.parse::<ItemKind>().map_err(|_| {
                    let all: Vec<&str> = ItemKind::ALL.iter().map(|k| k.as_str()).collect();
                    exit::config_err(format!(
                        "--kind {k}: unknown kind; one of {}",
                        all.join(", ")
                    ))
                })
            })
            .transpose()?;
        let view = store
            .run_view(id)
            .await?
            .ok_or_else(|| exit::config_err(format!("--show {id}: no run with that id")))?;
        let filter = ItemFilter {
            kind,
            search: a.search.clone(),
        };
        let limit = a.limit.unwrap_or(50).max(1);
        let paged = a.page.is_some() || a.offset.is_some() || a.limit.is_some();
        let offset = a
            .offset
            .unwrap_or_else(|| a.page.unwrap_or(1).saturating_sub(1) * u64::from(limit));
        output::run_view(
            &store,
            &view,
            &filter,
            output::Page {
                offset,
                limit,
                all: format == Format::Json && !paged,
            },
            format,
        )
        .await?;
    } else {
        let pair = a
            .target
            .as_ref()
            .map(|t| format!("{}->{}", cfg.source.name, t));
        let list = store.runs(pair.as_deref(), a.limit.unwrap_or(20)).await?;
        output::run_list(&list, format);
    }
    Ok(Code::Success)
}
