//! Configuration of the Entra ID source: tenant, application, credential, cloud and read options.
//!
//! Secrets are `secrecy::SecretString`, so `Debug` output and logs show `[REDACTED]`.

use crate::http::RetryPolicy;
use secrecy::SecretString;
use serde::Deserialize;

/// The Microsoft cloud the tenant lives in. Tokens are not interchangeable between clouds
/// (<https://learn.microsoft.com/graph/deployments>), and a tenant looked up in the wrong cloud
/// fails with AADSTS90002/50049/90038.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GraphCloud {
    /// Worldwide (and US Government GCC): `login.microsoftonline.com`, `graph.microsoft.com`.
    #[default]
    Global,
    /// US Government L4 (GCC High): `login.microsoftonline.us`, `graph.microsoft.us`.
    UsGovL4,
    /// US Government L5 (DoD): `login.microsoftonline.us`, `dod-graph.microsoft.us`.
    UsGovL5Dod,
    /// China, operated by 21Vianet: `login.chinacloudapi.cn`,
    /// `microsoftgraph.chinacloudapi.cn`.
    China,
    /// Explicit endpoints (tests, the demo, proxies).
    Custom {
        /// Login authority root, e.g. `http://127.0.0.1:8080` (the token URL is
        /// `{login_url}/{tenant}/oauth2/v2.0/token`).
        login_url: String,
        /// Graph base including the version, e.g. `http://127.0.0.1:8081/v1.0`.
        graph_url: String,
        /// The `.default` scope to ask for; defaults to `https://graph.microsoft.com/.default`.
        #[serde(default)]
        scope: Option<String>,
    },
}

impl GraphCloud {
    /// Login authority root (no trailing slash).
    pub fn login_url(&self) -> String {
        match self {
            GraphCloud::Global => "https://login.microsoftonline.com".into(),
            GraphCloud::UsGovL4 | GraphCloud::UsGovL5Dod => {
                "https://login.microsoftonline.us".into()
            }
            GraphCloud::China => "https://login.chinacloudapi.cn".into(),
            GraphCloud::Custom { login_url, .. } => login_url.trim_end_matches('/').to_string(),
        }
    }

    /// Graph resource root without version (also the token audience / scope resource).
    fn graph_root(&self) -> &'static str {
        match self {
            GraphCloud::Global | GraphCloud::Custom { .. } => "https://graph.microsoft.com",
            GraphCloud::UsGovL4 => "https://graph.microsoft.us",
            GraphCloud::UsGovL5Dod => "https://dod-graph.microsoft.us",
            GraphCloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// Graph base URL including `/v1.0` (no trailing slash).
    pub fn graph_url(&self) -> String {
        match self {
            GraphCloud::Custom { graph_url, .. } => graph_url.trim_end_matches('/').to_string(),
            other => format!("{}/v1.0", other.graph_root()),
        }
    }

    /// The client-credentials scope: `{graph resource}/.default`
    /// (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
    pub fn scope(&self) -> String {
        match self {
            GraphCloud::Custom { scope: Some(s), .. } => s.clone(),
            other => format!("{}/.default", other.graph_root()),
        }
    }

    /// Human name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            GraphCloud::Global => "global",
            GraphCloud::UsGovL4 => "US Government L4",
            GraphCloud::UsGovL5Dod => "US Government L5 (DoD)",
            GraphCloud::China => "China (21Vianet)",
            GraphCloud::Custom { .. } => "custom endpoints",
        }
    }
}

/// Signature algorithm of the certificate client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 (what the current Entra doc shows).
    #[default]
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (legacy, still accepted).
    RS256,
}

/// How the application proves its identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphCredential {
    /// A client secret (the secret's *value*, not its ID).
    Secret(SecretString),
    /// A certificate uploaded to the app registration; we sign a client assertion with its key.
    Certificate {
        /// PEM of the certificate (the first `CERTIFICATE` block is used).
        cert_pem: String,
        /// PEM of the RSA private key (PKCS#1 or PKCS#8).
        key_pem: SecretString,
        /// Signature algorithm.
        #[serde(default)]
        algorithm: AssertionAlgorithm,
    },
}

fn default_reconcile_hours() -> u64 {
    24 * 7
}
fn default_warn_days() -> u32 {
    30
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> u64 {
    60
}
fn default_page_size() -> u32 {
    999
}
/// Generous on purpose: 300,000 users are ~300 pages at 999 per page and 30,000 even at 10
/// objects per page; the cap only stops a listing that never ends (see `max_pages_per_read`).
fn default_max_pages() -> usize {
    100_000
}

/// Everything the Entra ID source needs.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphSourceConfig {
    /// Directory (tenant) ID or a verified domain such as `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Application (client) ID of the app registration.
    pub client_id: String,
    /// Client secret or certificate.
    pub credential: GraphCredential,
    /// National cloud or explicit endpoints.
    #[serde(default)]
    pub cloud: GraphCloud,
    /// When non-empty (together with `scope_group_names`), only these groups and their
    /// transitive member users are read.
    #[serde(default)]
    pub scope_group_ids: Vec<String>,
    /// Group display names to resolve to IDs (exact match) and add to the scope.
    #[serde(default)]
    pub scope_group_names: Vec<String>,
    /// Read profile-picture tags and allow [`super::GraphSource`]'s `photo()` downloads.
    #[serde(default)]
    pub read_photos: bool,
    /// A full read is done when the last one is older than this (corrects drift). 0 = never.
    #[serde(default = "default_reconcile_hours")]
    pub full_reconcile_every_hours: u64,
    /// Ignore the saved delta state and read everything.
    #[serde(default)]
    pub force_full: bool,
    /// Test Connection warns when the app's secret/certificate expires within this many days.
    #[serde(default = "default_warn_days")]
    pub secret_expiry_warn_days: u32,
    /// Maximum concurrent requests to Graph.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Page size asked for (`$top` / `Prefer: odata.maxpagesize`); Graph's maximum for users
    /// and groups is 999.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Most pages followed in one listing (one delta round, or one group's members). A listing
    /// that goes on longer is stopped and the read treated as incomplete (nothing is removed).
    #[serde(default = "default_max_pages")]
    pub max_pages_per_read: usize,
    /// Retry/throttling policy (not part of the config file).
    #[serde(skip)]
    pub retry: RetryPolicy,
}

impl GraphSourceConfig {
    /// A configuration with defaults for everything but the identity.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: GraphCredential,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            cloud: GraphCloud::Global,
            scope_group_ids: Vec::new(),
            scope_group_names: Vec::new(),
            read_photos: false,
            full_reconcile_every_hours: default_reconcile_hours(),
            force_full: false,
            secret_expiry_warn_days: default_warn_days(),
            max_concurrency: default_concurrency(),
            request_timeout_secs: default_timeout(),
            page_size: default_page_size(),
            max_pages_per_read: default_max_pages(),
            retry: RetryPolicy::default(),
        }
    }

    /// The v2.0 token endpoint for this tenant and cloud.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.cloud.login_url(),
            self.tenant_id
        )
    }

    /// True when only some groups are in scope.
    pub fn is_scoped(&self) -> bool {
        !self.scope_group_ids.is_empty() || !self.scope_group_names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds() {
        assert_eq!(
            GraphCloud::UsGovL5Dod.graph_url(),
            "https://dod-graph.microsoft.us/v1.0"
        );
        assert_eq!(
            GraphCloud::UsGovL4.scope(),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(
            GraphCloud::China.login_url(),
            "https://login.chinacloudapi.cn"
        );
        assert_eq!(
            GraphCloud::Global.scope(),
            "https://graph.microsoft.com/.default"
        );
        let c = GraphCloud::Custom {
            login_url: "http://x/".into(),
            graph_url: "http://y/v1.0/".into(),
            scope: None,
        };
        assert_eq!(c.login_url(), "http://x");
        assert_eq!(c.graph_url(), "http://y/v1.0");
    }

    #[test]
    fn secret_not_in_debug() {
        let cfg = GraphSourceConfig::new(
            "t",
            "c",
            GraphCredential::Secret(SecretString::from("hunter2-value")),
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
