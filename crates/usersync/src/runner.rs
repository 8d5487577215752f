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
use usersync_core::plan::{PlanInput, plan};
use usersync_core::ports::SourceDirectory;
use usersync_core::report::Report;
use usersync_store::{RunMode, RunStatus, Store};

/// What a run does.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Apply (sync) rather than simulate.
    pub apply: bool,
    /// Ignore saved delta state.
    pub full: bool,
    /// Override the mass-removal guard.
    pub allow_mass_removal: bool,
    /// Only this target.
    pub target: Option<String>,
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

async fn open_store(cfg: &FileConfig) -> anyhow::Result<Store> {
    let store = Store::open(&cfg.data_dir)
        .await
        .map_err(|e| exit::config_err(format!("data_dir: {e}")))?;
    let n = store.mark_interrupted_runs().await?;
    if n > 0 {
        tracing::warn!(
            runs = n,
            "marked runs left unfinished by a stopped process as interrupted"
        );
    }
    Ok(store)
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
/// stop the others.
pub async fn run_collect(
    cfg: &FileConfig,
    opts: &RunOptions,
    progress: bool,
) -> anyhow::Result<Collected> {
    let targets = selected(cfg, opts.target.as_deref())?;
    let store = open_store(cfg).await?;
    let source_name = cfg.source.name.clone();
    let source = Arc::new(
        GraphSource::new(source_config(&cfg.source)?)
            .map_err(|e| exit::connection_err(format!("source: {e}")))?,
    );

    let bar = output::Phase::start(progress, "reading Entra ID");
    let t0 = Instant::now();
    let state = if opts.full {
        None
    } else {
        store.source_state(&source_name).await?
    };
    let read = source
        .read(state)
        .await
        .map_err(|e| exit::connection_err(format!("source {source_name}: {e}")))?;
    bar.finish(format!(
        "read Entra ID: {} users, {} groups ({}, {} requests, {:.1}s)",
        read.snapshot.users.len(),
        read.snapshot.groups.len(),
        read.stats.mode,
        read.stats.requests,
        t0.elapsed().as_secs_f64()
    ));
    if read.snapshot.complete {
        store
            .save_source_state(&source_name, &read.next_state)
            .await?;
    }

    let mut out = Collected {
        runs: Vec::new(),
        failures: Vec::new(),
    };
    for t in targets {
        match run_target(cfg, t, &store, source.as_ref(), &read, opts, progress).await {
            Ok(r) => out.runs.push(r),
            Err(e) => {
                record_failed_run(
                    &store,
                    &format!("{}->{}", cfg.source.name, t.name),
                    opts,
                    &e,
                )
                .await;
                out.failures.push(e);
            }
        }
    }
    Ok(out)
}

/// Keeps a target that could not be synced in the run history, with the reason.
async fn record_failed_run(store: &Store, pair: &str, opts: &RunOptions, e: &anyhow::Error) {
    let mode = opts.mode();
    let report = serde_json::json!({ "error": exit::render(e) });
    let recorded = match store.start_run(pair, mode, now_ms()).await {
        Ok(id) => store
            .finish_run(id, RunStatus::Failed, &report, now_ms())
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = recorded {
        tracing::warn!(pair, error = %err, "could not record the failed run");
    }
}

async fn run_target(
    cfg: &FileConfig,
    t: &TargetConfig,
    store: &Store,
    source: &GraphSource,
    read: &usersync_core::ports::SourceRead,
    opts: &RunOptions,
    progress: bool,
) -> anyhow::Result<TargetRun> {
    let pair = format!("{}->{}", cfg.source.name, t.name);
    let tcfg = target_config(t)?;
    let target = atlassian::build_target(&tcfg)
        .map_err(|e| exit::connection_err(format!("target {}: {e}", t.name)))?;
    let caps = target.capabilities();
    let bar = output::Phase::start(progress, &format!("reading {}", t.name));
    let snapshot = target
        .read()
        .await
        .map_err(|e| exit::connection_err(format!("target {}: {e}", t.name)))?;
    bar.finish(format!(
        "read {} ({}): {} accounts, {} groups",
        t.name,
        caps.product,
        snapshot.accounts.len(),
        snapshot.groups.len()
    ));

    let links = store.links(&pair).await?;
    let mut settings = t.sync.clone();
    if opts.allow_mass_removal {
        settings.policy.guard.allow_mass_removal = true;
    }
    let started = now_ms();
    let input = PlanInput {
        source: &read.snapshot,
        target: &snapshot,
        links: &links,
        settings: &settings,
        capabilities: &caps,
        now_ms: started,
    };
    let the_plan = plan(&input);
    let mode = opts.mode();
    let run_id = store.start_run(&pair, mode, started).await?;
    store
        .save_plan(run_id, &serde_json::to_value(&the_plan)?)
        .await?;

    let mut report = if opts.apply && the_plan.held.is_none() {
        let journal = store.journal(&pair, run_id, started);
        let bar = output::Progress::new(
            progress,
            the_plan.ops.len() as u64,
            &format!("applying to {}", t.name),
        );
        let opts = usersync_core::engine::ApplyOptions {
            max_concurrency: caps.max_concurrency,
        };
        let result =
            usersync_core::engine::apply(&the_plan, target.as_ref(), source, &journal, &opts, &bar)
                .await;
        bar.finish();
        result
    } else {
        usersync_core::engine::simulate(&the_plan)
    };
    report.run.connector = Some(pair.clone());
    report.run.source_read = Some(read.stats.clone());
    report.run.started_at = Some(rfc3339(started));
    report.run.finished_at = Some(rfc3339(now_ms()));
    let status = if the_plan.held.is_some() {
        RunStatus::Held
    } else if report.outcomes.failed > 0 || report.stopped.is_some() {
        RunStatus::PartiallyFailed
    } else {
        RunStatus::Succeeded
    };
    let code = match status {
        RunStatus::Held => Code::Held,
        RunStatus::PartiallyFailed if report.stopped.is_some() => Code::Connection,
        RunStatus::PartiallyFailed => Code::PartialFailure,
        _ => Code::Success,
    };
    store
        .finish_run(run_id, status, &serde_json::to_value(&report)?, now_ms())
        .await?;
    Ok(TargetRun {
        target: t.name.clone(),
        run_id,
        report,
        code,
    })
}

/// `runs`: history, or one run's report.
pub async fn runs(cfg: &FileConfig, a: &RunsArgs, format: Format) -> anyhow::Result<Code> {
    let store = open_store(cfg).await?;
    if let Some(id) = a.show {
        let run = store
            .run(id)
            .await?
            .ok_or_else(|| exit::config_err(format!("--show {id}: no run with that id")))?;
        output::run_record(&run, format);
    } else {
        let pair = a
            .target
            .as_ref()
            .map(|t| format!("{}->{}", cfg.source.name, t));
        let list = store.runs(pair.as_deref(), a.limit).await?;
        output::run_list(&list, format);
    }
    Ok(Code::Success)
}
