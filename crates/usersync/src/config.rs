//! The TOML configuration file: one Entra ID source, one or more Atlassian targets, each with
//! its sync settings. Secrets are never inline: each is read from an environment variable
//! (`*_env`) or a file (`*_file`). [`load`] turns every problem into a message naming the field
//! and the fix.

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
}

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
    pub product: String,
    /// Base URL including the context path, e.g. `https://jira.example.com/jira`.
    pub base_url: String,
    /// `bearer` (personal access token), `basic`, or `crowd_app` (Crowd application).
    pub auth: String,
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
    /// Mapping, scope and policy.
    #[serde(default)]
    pub sync: SyncSettings,
}

/// Resolves a secret reference. `field` names it in errors.
pub fn resolve_secret(r: &SecretRef, field: &str) -> anyhow::Result<SecretString> {
    match (&r.env, &r.file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
            _ => anyhow::bail!(
                "{field}: environment variable {var} is not set or empty — export it, or use {field}.file"
            ),
        },
        (None, Some(path)) => {
            let v = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "{field}: cannot read secret file {} — check the path and its permissions",
                    path.display()
                )
            })?;
            let v = v.trim_end_matches(['\n', '\r']).to_string();
            anyhow::ensure!(
                !v.is_empty(),
                "{field}: secret file {} is empty",
                path.display()
            );
            Ok(SecretString::from(v))
        }
        (Some(_), Some(_)) => {
            anyhow::bail!("{field}: set either {field}.env or {field}.file, not both")
        }
        (None, None) => anyhow::bail!(
            "{field}: set {field}.env (an environment variable) or {field}.file (a file path)"
        ),
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
    Ok(cfg)
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

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_url(field: &str, url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| {
        anyhow::anyhow!("{field}: `{url}` is not a valid URL ({e}) — write it like https://jira.example.com/jira")
    })?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https"),
        "{field}: `{url}` must start with https:// (or http:// for a local test server)"
    );
    Ok(())
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
        check_url("source.login_url", u)?;
    }
    if let Some(u) = &s.graph_url {
        check_url("source.graph_url", u)?;
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
        anyhow::ensure!(
            matches!(
                t.product.as_str(),
                "jira" | "confluence" | "bitbucket" | "crowd"
            ),
            "{f}.product: `{}` is unknown — use jira, confluence, bitbucket or crowd (Bamboo and other products are fed through Crowd)",
            t.product
        );
        check_url(&format!("{f}.base_url"), &t.base_url)?;
        match t.auth.as_str() {
            "bearer" => anyhow::ensure!(
                t.secret.is_some(),
                "{f}.secret: bearer auth needs the personal access token (secret.env or secret.file)"
            ),
            "basic" | "crowd_app" => {
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
            other => {
                anyhow::bail!("{f}.auth: `{other}` is unknown — use bearer, basic or crowd_app")
            }
        }
        anyhow::ensure!(
            (t.product == "crowd") == (t.auth == "crowd_app"),
            "{f}.auth: Crowd uses application authentication (auth = \"crowd_app\" with the application name and password); the other products use bearer or basic"
        );
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
