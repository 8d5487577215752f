//! The TOML configuration file: one Entra ID source, one or more Atlassian targets, each with
//! its sync settings. Secrets are never inline: each is read from an environment variable
//! (`*_env`) or a file (`*_file`). [`load`] turns every problem into a message naming the field
//! and the fix; it refuses everything a run would fail on (numbers out of range, unreadable CA
//! bundles, plain `http://` unless `allow_insecure_http = true`, credentials in URLs), so
//! `config check` passing means the configuration itself is sound.
//!
//! Numeric ranges (inclusive): `max_concurrency` 1–[`MAX_CONCURRENCY`]; `timeout_secs`
//! 1–[`MAX_TIMEOUT_SECS`]; `full_reconcile_every_hours` 1–[`MAX_RECONCILE_HOURS`];
//! `secret_expiry_warning_days` 0–[`MAX_WARNING_DAYS`]; `retry_max_wait_secs` 0–3600 and
//! `retry_run_budget_secs` 0–86400 (see [`RetryBudget`]).

use crate::exit;
use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use usersync_core::config::SyncSettings;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the SQLite state lives. Relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The Entra ID connector.
    pub source: SourceConfig,
    /// Atlassian targets.
    #[serde(rename = "target", default)]
    pub targets: Vec<TargetConfig>,
    /// `[runs]`: run history (retention).
    #[serde(default)]
    pub runs: RunsConfig,
}

/// `[runs]`: how much run history the store keeps, pruned when a run finishes. A run is
/// deleted (with its rows) once it is older than `keep_days` or not among the `keep_runs`
/// newest runs of its target; the newest run of each target is always kept.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RunsConfig {
    /// Runs kept per target (1–100000; default 200).
    #[serde(default = "default_keep_runs")]
    pub keep_runs: u32,
    /// Days a run is kept (1–3650; default 30).
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    /// Also store a row per user with nothing to change (default false: only their count,
    /// so a no-change run stores almost nothing).
    #[serde(default)]
    pub store_unchanged: bool,
}

fn default_keep_runs() -> u32 {
    usersync_store::Retention::default().keep_runs
}

fn default_keep_days() -> u32 {
    usersync_store::Retention::default().keep_days
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            keep_runs: default_keep_runs(),
            keep_days: default_keep_days(),
            store_unchanged: false,
        }
    }
}

impl RunsConfig {
    /// The store's retention setting.
    pub fn retention(&self) -> usersync_store::Retention {
        usersync_store::Retention {
            keep_runs: self.keep_runs,
            keep_days: self.keep_days,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("usersync-data")
}

/// A secret reference: exactly one of `env` or `file`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Environment variable holding the secret.
    pub env: Option<String>,
    /// File holding the secret (trailing newline trimmed).
    pub file: Option<PathBuf>,
}

/// `[source]`: the Entra ID connector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Connector name (key in the store).
    #[serde(default = "default_source_name")]
    pub name: String,
    /// Directory (tenant) ID: a GUID or a verified domain.
    pub tenant_id: String,
    /// Application (client) ID: a GUID.
    pub client_id: String,
    /// Client secret (`client_secret.env` / `client_secret.file`).
    pub client_secret: Option<SecretRef>,
    /// Certificate credential: PEM certificate file.
    pub certificate_file: Option<PathBuf>,
    /// Certificate credential: PEM private key (`private_key.env` / `private_key.file`).
    pub private_key: Option<SecretRef>,
    /// `global` (default), `us_gov_l4`, `us_gov_l5` or `china`.
    #[serde(default)]
    pub cloud: Option<String>,
    /// Explicit login endpoint base (overrides `cloud`), e.g. an emulator.
    pub login_url: Option<String>,
    /// Explicit Graph base including `/v1.0` (overrides `cloud`).
    pub graph_url: Option<String>,
    /// Read profile pictures (needs `User.Read.All`).
    #[serde(default = "yes")]
    pub sync_photos: bool,
    /// Hours between full reconciles (delta reads in between).
    pub full_reconcile_every_hours: Option<u64>,
    /// Warn this many days before the client secret expires.
    pub secret_expiry_warning_days: Option<u32>,
    /// Concurrent requests to Graph.
    pub max_concurrency: Option<usize>,
    /// Read only these groups and their members (object IDs), filtered on the server side.
    #[serde(default)]
    pub scope_group_ids: Vec<String>,
    /// Allow `http://` login/Graph URLs (credentials and tokens travel in clear): for local
    /// test servers and emulators only.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Retry budgets for Graph.
    #[serde(flatten)]
    pub retry: RetryBudget,
}

/// Bounds on the time spent waiting for retries (both optional; defaults in
/// `usersync_connectors::http::RetryPolicy`).
#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct RetryBudget {
    /// Longest total back-off for one request after 5xx answers without `Retry-After` or
    /// transport errors (default 60 s). `Retry-After` waits asked by the service are bounded
    /// separately (10 min per request).
    pub retry_max_wait_secs: Option<u64>,
    /// Longest total waiting for retries across one run's requests to this service
    /// (default 1800 s); when spent, the run stops with an error instead of hanging.
    pub retry_run_budget_secs: Option<u64>,
}

impl RetryBudget {
    /// Applies the configured budgets to a retry policy.
    pub fn apply(&self, policy: &mut usersync_connectors::http::RetryPolicy) {
        if let Some(s) = self.retry_max_wait_secs {
            policy.max_error_wait = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.retry_run_budget_secs {
            policy.max_run_wait = std::time::Duration::from_secs(s);
        }
    }
}

/// Largest `max_concurrency` accepted (the products' and Graph's throttling make more useless).
pub const MAX_CONCURRENCY: usize = 64;
/// Largest `timeout_secs` accepted.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// Largest `full_reconcile_every_hours` accepted (one year).
pub const MAX_RECONCILE_HOURS: u64 = 8760;
/// Largest `secret_expiry_warning_days` accepted.
pub const MAX_WARNING_DAYS: u32 = 3650;

fn default_source_name() -> String {
    "entra".into()
}
fn yes() -> bool {
    true
}

/// `[[target]]`: one Atlassian product.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Target name (unique; used in the store and on the command line).
    pub name: String,
    /// `jira`, `confluence`, `bitbucket` or `crowd`.
    pub product: ProductName,
    /// Base URL including the context path, e.g. `https://jira.example.com/jira`.
    pub base_url: String,
    /// `bearer` (personal access token), `basic`, or `crowd_app` (Crowd application).
    pub auth: AuthKind,
    /// User name (basic) or application name (crowd_app).
    pub username: Option<String>,
    /// Password or token (`secret.env` / `secret.file`).
    pub secret: Option<SecretRef>,
    /// PEM bundle of an internal CA.
    pub ca_bundle: Option<PathBuf>,
    /// Concurrent writes.
    pub max_concurrency: Option<usize>,
    /// Request timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// Jira: application keys granted on create (e.g. `jira-software`). Default none: access
    /// comes only from `sync.policy.access_groups`.
    #[serde(default)]
    pub jira_application_keys: Vec<String>,
    /// Bitbucket: add new users to the default group.
    #[serde(default)]
    pub bitbucket_add_to_default_group: bool,
    /// Scheduled synchronisation, Quartz cron syntax (e.g. `0 0 * * * ?`); used by `serve`.
    pub schedule: Option<String>,
    /// Hours between full target reconciles (default 24). In between, a run whose source read
    /// was a delta reads from the target only what the change touches.
    pub reconcile_every_hours: Option<u64>,
    /// Mapping, scope and policy.
    #[serde(default)]
    pub sync: SyncSettings,
    /// Allow an `http://` base_url (credentials travel in clear): local test servers only.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Retry budgets for this target.
    #[serde(flatten)]
    pub retry: RetryBudget,
}

/// `target.product`. Unknown values are refused by serde with the list of valid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductName {
    /// Jira Data Center.
    Jira,
    /// Confluence Data Center.
    Confluence,
    /// Bitbucket Data Center.
    Bitbucket,
    /// Crowd Data Center (also feeds Bamboo and other Crowd-backed products).
    Crowd,
}

impl ProductName {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductName::Jira => "jira",
            ProductName::Confluence => "confluence",
            ProductName::Bitbucket => "bitbucket",
            ProductName::Crowd => "crowd",
        }
    }
}

impl std::fmt::Display for ProductName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `target.auth`. Unknown values are refused by serde with the list of valid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// Personal access token (`Authorization: Bearer`).
    Bearer,
    /// HTTP Basic with an administrator's username and password.
    Basic,
    /// Crowd application name and password.
    CrowdApp,
}

impl AuthKind {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Bearer => "bearer",
            AuthKind::Basic => "basic",
            AuthKind::CrowdApp => "crowd_app",
        }
    }
}

impl std::fmt::Display for AuthKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolves a secret reference. `field` names it in errors, which are configuration errors
/// (exit code 5). A value that does not look like a variable name or a path is not repeated in
/// the message: it may be the secret itself, pasted by mistake.
pub fn resolve_secret(r: &SecretRef, field: &str) -> anyhow::Result<SecretString> {
    match (&r.env, &r.file) {
        (Some(var), None) => {
            if !is_env_name(var) {
                return Err(exit::config_err(format!(
                    "{field}.env: the value is not an environment variable name (letters, digits and '_') — \
                     write the variable's name, e.g. {{ env = \"ENTRA_CLIENT_SECRET\" }}, not the secret itself (not shown)"
                )));
            }
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                _ => Err(exit::config_err(format!(
                    "{field}: environment variable {var} is not set or empty — export it, or use {field}.file"
                ))),
            }
        }
        (None, Some(path)) => {
            let shown = shown_path(path);
            let v = std::fs::read_to_string(path).map_err(|e| {
                exit::config_err(format!(
                    "{field}.file: cannot read the secret file {shown} ({}) — check the path and its permissions",
                    e.kind()
                ))
            })?;
            let v = v.trim_end_matches(['\n', '\r']).to_string();
            if v.is_empty() {
                return Err(exit::config_err(format!(
                    "{field}.file: the secret file {shown} is empty"
                )));
            }
            Ok(SecretString::from(v))
        }
        (Some(_), Some(_)) => Err(exit::config_err(format!(
            "{field}: set either {field}.env or {field}.file, not both"
        ))),
        (None, None) => Err(exit::config_err(format!(
            "{field}: set {field}.env (an environment variable) or {field}.file (a file path)"
        ))),
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret file's path for a message: shown when it looks like a path (its directory exists),
/// withheld when it may be a secret pasted into `file`.
fn shown_path(path: &Path) -> String {
    let dir_exists = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => false,
        Some(p) => p.is_dir(),
        None => false,
    };
    if dir_exists {
        path.display().to_string()
    } else {
        "(path not shown: its directory does not exist — is this the secret itself rather than a file path?)".into()
    }
}

/// Reads and validates the file. Every error names the field and the fix.
pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read config file {} — pass the right path with --config",
            path.display()
        )
    })?;
    let mut cfg = parse(&text).with_context(|| format!("in {}", path.display()))?;
    if cfg.data_dir.is_relative()
        && let Some(dir) = path.parent()
    {
        cfg.data_dir = dir.join(&cfg.data_dir);
    }
    check_files(&cfg).with_context(|| format!("in {}", path.display()))?;
    check_runs(&cfg.runs).with_context(|| format!("in {}", path.display()))?;
    Ok(cfg)
}

/// Checks the `[runs]` numbers are in range.
fn check_runs(r: &RunsConfig) -> anyhow::Result<()> {
    if !(1..=100_000).contains(&r.keep_runs) {
        return Err(exit::config_err(format!(
            "runs.keep_runs = {}: must be 1–100000 (runs kept per target)",
            r.keep_runs
        )));
    }
    if !(1..=3650).contains(&r.keep_days) {
        return Err(exit::config_err(format!(
            "runs.keep_days = {}: must be 1–3650 (days a run is kept)",
            r.keep_days
        )));
    }
    Ok(())
}

/// Checks the files the configuration names (CA bundles, certificates) are readable and of the
/// right kind, so a bad one fails `config check` rather than the first run.
pub fn check_files(cfg: &FileConfig) -> anyhow::Result<()> {
    for (i, t) in cfg.targets.iter().enumerate() {
        if let Some(ca) = &t.ca_bundle {
            let f = format!("target[{i}] ({}).ca_bundle", t.name);
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!(
                    "{f}: cannot read {} ({}) — check the path and its permissions",
                    ca.display(),
                    e.kind()
                )
            })?;
            use rustls::pki_types::{CertificateDer, pem::PemObject as _};
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{f}: {} is not a PEM file: {e}", ca.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "{f}: {} contains no PEM certificate (-----BEGIN CERTIFICATE-----) — export the internal CA's certificate in PEM form",
                ca.display()
            );
            let mut roots = rustls::RootCertStore::empty();
            for (n, der) in certs.into_iter().enumerate() {
                roots.add(der).map_err(|e| {
                    anyhow::anyhow!(
                        "{f}: certificate #{} in {} is not a valid X.509 certificate: {e}",
                        n + 1,
                        ca.display()
                    )
                })?;
            }
        }
    }
    if let Some(cert) = &cfg.source.certificate_file {
        std::fs::read_to_string(cert).map_err(|e| {
            anyhow::anyhow!(
                "source.certificate_file: cannot read {} ({}) — check the path",
                cert.display(),
                e.kind()
            )
        })?;
    }
    Ok(())
}

/// Parses and validates config text.
pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!(explain_toml(&e)))?;
    validate(&cfg)?;
    Ok(cfg)
}

fn explain_toml(e: &toml::de::Error) -> String {
    // serde quotes the offending value; when that value is an inline secret it must not be
    // echoed, so values are never repeated back.
    let msg = regex::Regex::new(r#"string "(?:[^"\\]|\\.)*""#)
        .map(|re| re.replace_all(e.message(), "a string").into_owned())
        .unwrap_or_else(|_| "invalid value".into());
    // Numbers and other scalars too: a numeric PIN or token pasted inline is still a secret.
    let msg = regex::Regex::new(
        r"(integer|floating point|boolean|character|string|date|datetime) `[^`]*`",
    )
    .map(|re| re.replace_all(&msg, "$1").into_owned())
    .unwrap_or_else(|_| "invalid value".into());
    let msg = msg.as_str();
    let hint = if msg.contains("expected struct SecretRef") {
        "\nhint: secrets are never written inline; use e.g. `client_secret = { env = \"ENTRA_SECRET\" }` or `{ file = \"/run/secrets/entra\" }`"
    } else {
        ""
    };
    match e.span() {
        Some(span) => format!(
            "configuration error at byte {}..{}: {msg}{hint}",
            span.start, span.end
        ),
        None => format!("configuration error: {msg}{hint}"),
    }
}

/// A GUID in its hyphenated form (what the Entra admin centre shows).
fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn check_url(field: &str, url: &str, allow_http: &str, allowed: bool) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| {
        anyhow::anyhow!(
            "{field}: not a valid URL ({e}) — write it like https://jira.example.com/jira"
        )
    })?;
    // Never echo a URL that carries credentials.
    anyhow::ensure!(
        parsed.username().is_empty() && parsed.password().is_none(),
        "{field}: the URL contains a user name or password (user:password@host) — remove them; credentials go in the secret settings"
    );
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allowed => Ok(()),
        "http" => anyhow::bail!(
            "{field}: `{url}` uses plain http://, which sends credentials and tokens unencrypted — use https:// \
             (for a local test server only, set {allow_http} = true)"
        ),
        _ => anyhow::bail!("{field}: `{url}` must start with https://"),
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    min: T,
    max: T,
    what: &str,
) -> anyhow::Result<()> {
    if let Some(v) = value {
        anyhow::ensure!(
            v >= min && v <= max,
            "{field}: {v} is out of range — use {min} to {max} ({what})"
        );
    }
    Ok(())
}

fn check_retry(prefix: &str, r: &RetryBudget) -> anyhow::Result<()> {
    check_range(
        &format!("{prefix}.retry_max_wait_secs"),
        r.retry_max_wait_secs,
        0,
        3600,
        "seconds",
    )?;
    check_range(
        &format!("{prefix}.retry_run_budget_secs"),
        r.retry_run_budget_secs,
        0,
        86_400,
        "seconds",
    )
}

/// Semantic checks beyond the TOML types.
pub fn validate(cfg: &FileConfig) -> anyhow::Result<()> {
    let s = &cfg.source;
    anyhow::ensure!(
        is_guid(&s.tenant_id) || (s.tenant_id.contains('.') && !s.tenant_id.contains('/')),
        "source.tenant_id: `{}` is neither a GUID nor a domain — copy the Directory (tenant) ID from the app's Overview page in the Entra admin centre",
        s.tenant_id
    );
    anyhow::ensure!(
        is_guid(&s.client_id),
        "source.client_id: `{}` is not a GUID — copy the Application (client) ID from the app's Overview page in the Entra admin centre",
        s.client_id
    );
    match (&s.client_secret, &s.certificate_file) {
        (None, None) => anyhow::bail!(
            "source: no credential — set source.client_secret = {{ env = \"VAR\" }} (or {{ file = \"path\" }}), or source.certificate_file with source.private_key"
        ),
        (Some(_), Some(_)) => {
            anyhow::bail!("source: set either client_secret or certificate_file, not both")
        }
        (None, Some(_)) if s.private_key.is_none() => {
            anyhow::bail!(
                "source.private_key: a certificate credential needs the private key (private_key.env or private_key.file)"
            )
        }
        _ => {}
    }
    if let Some(c) = &s.cloud {
        anyhow::ensure!(
            matches!(c.as_str(), "global" | "us_gov_l4" | "us_gov_l5" | "china"),
            "source.cloud: `{c}` is unknown — use global, us_gov_l4, us_gov_l5 or china (or set login_url and graph_url)"
        );
    }
    if let Some(u) = &s.login_url {
        check_url(
            "source.login_url",
            u,
            "source.allow_insecure_http",
            s.allow_insecure_http,
        )?;
    }
    if let Some(u) = &s.graph_url {
        check_url(
            "source.graph_url",
            u,
            "source.allow_insecure_http",
            s.allow_insecure_http,
        )?;
    }
    check_range(
        "source.max_concurrency",
        s.max_concurrency,
        1,
        MAX_CONCURRENCY,
        "concurrent requests",
    )?;
    check_range(
        "source.full_reconcile_every_hours",
        s.full_reconcile_every_hours,
        1,
        MAX_RECONCILE_HOURS,
        "hours",
    )?;
    check_range(
        "source.secret_expiry_warning_days",
        s.secret_expiry_warning_days,
        0,
        MAX_WARNING_DAYS,
        "days",
    )?;
    check_retry("source", &s.retry)?;
    for (i, g) in s.scope_group_ids.iter().enumerate() {
        anyhow::ensure!(
            is_guid(g),
            "source.scope_group_ids[{i}]: `{g}` is not a group object ID (a GUID like 9a3c…-…) — copy the Object ID from the group's Overview page in the Entra admin centre"
        );
    }
    anyhow::ensure!(
        !cfg.targets.is_empty(),
        "target: no [[target]] configured — add at least one Atlassian target"
    );
    let mut names = std::collections::BTreeSet::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let f = format!("target[{i}] ({})", t.name);
        anyhow::ensure!(
            !t.name.is_empty()
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{f}.name: use letters, digits, '-' and '_' only"
        );
        anyhow::ensure!(
            names.insert(t.name.to_lowercase()),
            "{f}.name: duplicate target name `{}`",
            t.name
        );
        check_range(
            &format!("{f}.reconcile_every_hours"),
            t.reconcile_every_hours,
            1,
            MAX_RECONCILE_HOURS,
            "hours",
        )?;
        check_url(
            &format!("{f}.base_url"),
            &t.base_url,
            &format!("{f}.allow_insecure_http"),
            t.allow_insecure_http,
        )?;
        match t.auth {
            AuthKind::Bearer => anyhow::ensure!(
                t.secret.is_some(),
                "{f}.secret: bearer auth needs the personal access token (secret.env or secret.file)"
            ),
            AuthKind::Basic | AuthKind::CrowdApp => {
                anyhow::ensure!(
                    t.username.is_some(),
                    "{f}.username: {} auth needs a username",
                    t.auth
                );
                anyhow::ensure!(
                    t.secret.is_some(),
                    "{f}.secret: {} auth needs a password (secret.env or secret.file)",
                    t.auth
                );
            }
        }
        anyhow::ensure!(
            (t.product == ProductName::Crowd) == (t.auth == AuthKind::CrowdApp),
            "{f}.auth: Crowd uses application authentication (auth = \"crowd_app\" with the application name and password); the other products use bearer or basic"
        );
        check_range(
            &format!("{f}.max_concurrency"),
            t.max_concurrency,
            1,
            MAX_CONCURRENCY,
            "concurrent requests",
        )?;
        check_range(
            &format!("{f}.timeout_secs"),
            t.timeout_secs,
            1,
            MAX_TIMEOUT_SECS,
            "seconds per request",
        )?;
        check_retry(&f, &t.retry)?;
        if let Some(expr) = &t.schedule {
            usersync_core::schedule::validate_schedule(expr)
                .map_err(|e| anyhow::anyhow!("{f}.schedule: {e}"))?;
        }
        for (j, g) in t
            .sync
            .scope
            .include_groups
            .iter()
            .chain(&t.sync.scope.exclude_groups)
            .enumerate()
        {
            if let usersync_core::config::GroupSelector::Regex(r) = g {
                regex::Regex::new(r).map_err(|e| {
                    anyhow::anyhow!("{f}.sync.scope: group regex #{j} `{r}` is invalid: {e}")
                })?;
            }
        }
        let gd = &t.sync.policy.guard;
        // An approval belongs to one reviewed run, not to the file (it would approve every
        // future run, however many accounts it removes).
        anyhow::ensure!(
            !gd.allow_mass_removal,
            "{f}.sync.policy.guard.allow_mass_removal: not accepted in the configuration file — it would approve every future mass removal unseen; remove it, and approve a held run after review with `usersync sync --approve RUN`"
        );
        for (key, pct) in [
            ("max_percent", gd.max_percent),
            ("group_max_percent", gd.group_max_percent),
            ("membership_max_percent", gd.membership_max_percent),
        ] {
            anyhow::ensure!(
                (0.0..=100.0).contains(&pct),
                "{f}.sync.policy.guard.{key}: {pct} is not a percentage between 0 and 100"
            );
        }
    }
    Ok(())
}
