//! Atlassian Data Center targets: Jira, Confluence, Bitbucket and Crowd.
//!
//! Each product gets one [`TargetDirectory`] implementation that reads the product's users,
//! groups and direct memberships over REST (paged; complete or an error, never silently
//! partial) and applies the engine's operations with the product's own REST calls. Wire formats
//! follow Atlassian's documentation (the official OpenAPI descriptions of Jira DC 10.3,
//! Confluence DC 10.0 and Bitbucket DC 9.4, and the Crowd usermanagement REST docs); the
//! product-specific modules cite the page each behaviour comes from.
//!
//! | Product | Module | API |
//! |---|---|---|
//! | Jira Data Center | [`jira`] | `/rest/api/2` |
//! | Confluence Data Center | [`confluence`] | `/rest/api` (user management REST, 8.4+) |
//! | Bitbucket Data Center | [`bitbucket`] | `/rest/api/1.0` admin API |
//! | Crowd Data Center | [`crowd`] | `/rest/usermanagement/1` (application authentication) |
//!
//! **Bamboo and every other Atlassian product** are fed through Crowd: point the product at a
//! Crowd (or "Jira user server") directory and provision into Crowd with [`Product::Crowd`].
//! Crowd's usermanagement API is also what Jira exposes as a user server, so the Crowd target
//! works against Jira's `/rest/usermanagement/1` too (with the application's credentials).
//!
//! Licences: a created user gets product access only as configured — Jira `applicationKeys`
//! ([`AtlassianTargetConfig::jira_application_keys`], default none), Bitbucket
//! `addToDefaultGroup` ([`AtlassianTargetConfig::bitbucket_add_to_default_group`], default
//! false), Confluence and Crowd through the engine's `policy.access_groups` — so a synced user
//! consumes a seat only when intended.
//!
//! Credentials are [`SecretString`]s and never logged; generated passwords (where an API
//! requires one) are random, 40 characters, and never logged or returned.

mod bitbucket;
mod check;
mod client;
mod confluence;
mod crowd;
mod jira;

pub use check::test_connection;
pub use client::{ProductError, classify, error_for, parse_error_body};

use crate::http::RetryPolicy;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use usersync_core::ports::{ConnectorError, TargetDirectory};

/// Which Atlassian Data Center product a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Jira Data Center (Software, Service Management, Core), REST API 2.
    Jira,
    /// Confluence Data Center, REST API (user management since 8.4).
    Confluence,
    /// Bitbucket Data Center, REST API 1.0.
    Bitbucket,
    /// Crowd Data Center usermanagement REST API (also feeds Bamboo and other products).
    Crowd,
}

impl Product {
    /// The product's name for reports.
    pub fn display_name(self) -> &'static str {
        match self {
            Product::Jira => "Jira Data Center",
            Product::Confluence => "Confluence Data Center",
            Product::Bitbucket => "Bitbucket Data Center",
            Product::Crowd => "Crowd Data Center",
        }
    }
}

/// How usersync authenticates to the product.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AtlassianAuth {
    /// HTTP Basic with an administrator's username and password.
    Basic {
        /// Username.
        username: String,
        /// Password.
        password: SecretString,
    },
    /// A personal access token (Jira 8.14+, Confluence 7.9+) or Bitbucket HTTP access token,
    /// sent as `Authorization: Bearer`.
    Bearer {
        /// The token.
        token: SecretString,
    },
    /// Crowd application credentials (application name and password, sent as HTTP Basic).
    /// Only valid for [`Product::Crowd`]; the caller's address must also be allowed by the
    /// application's remote-address list.
    CrowdApp {
        /// Application name.
        name: String,
        /// Application password.
        password: SecretString,
    },
}

/// Settings of one Atlassian target.
#[derive(Debug, Clone)]
pub struct AtlassianTargetConfig {
    /// The product.
    pub product: Product,
    /// Base URL including the context path, e.g. `https://host/jira`. A trailing `/` is
    /// ignored.
    pub base_url: String,
    /// Credentials.
    pub auth: AtlassianAuth,
    /// PEM file with additional trusted CA certificates (internal PKI).
    pub ca_bundle: Option<PathBuf>,
    /// Maximum concurrent requests to this target (also the engine's write concurrency).
    pub max_concurrency: usize,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Jira only: `applicationKeys` given to new users (e.g. `jira-software`). Empty (the
    /// default) sends `[]`, so only group membership grants access and a seat is used only when
    /// the engine adds the user to a licence group.
    pub jira_application_keys: Vec<String>,
    /// Bitbucket only: `addToDefaultGroup` on create. Default false, so a seat is used only
    /// through the configured access groups.
    pub bitbucket_add_to_default_group: bool,
    /// Retry policy for 429 / 503 / transport errors.
    pub retry: RetryPolicy,
    /// Confluence only: how long to wait for the asynchronous delete-user task before
    /// reporting it as still running (the delete still completes on the server).
    pub confluence_delete_wait: Duration,
}

impl AtlassianTargetConfig {
    /// A configuration with the defaults: concurrency 4, 30 s timeout, no application keys,
    /// no default group, default retry policy.
    pub fn new(product: Product, base_url: impl Into<String>, auth: AtlassianAuth) -> Self {
        Self {
            product,
            base_url: base_url.into(),
            auth,
            ca_bundle: None,
            max_concurrency: 4,
            timeout: Duration::from_secs(30),
            jira_application_keys: Vec::new(),
            bitbucket_add_to_default_group: false,
            retry: RetryPolicy::default(),
            confluence_delete_wait: Duration::from_secs(60),
        }
    }
}

/// Builds the target for `cfg.product`. Fails only on configuration errors (unreadable CA
/// bundle, bad URL, Crowd credentials used for another product); it does not contact the
/// server — use [`test_connection`] for that.
pub fn build_target(
    cfg: &AtlassianTargetConfig,
) -> Result<Arc<dyn TargetDirectory>, ConnectorError> {
    let client = client::Client::new(cfg)?;
    Ok(match cfg.product {
        Product::Jira => Arc::new(jira::JiraTarget::new(client, cfg)),
        Product::Confluence => Arc::new(confluence::ConfluenceTarget::new(client, cfg)),
        Product::Bitbucket => Arc::new(bitbucket::BitbucketTarget::new(client, cfg)),
        Product::Crowd => Arc::new(crowd::CrowdTarget::new(client)),
    })
}
