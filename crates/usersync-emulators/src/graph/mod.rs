//! Microsoft Entra ID (token endpoint) + Microsoft Graph v1.0 emulator.
//!
//! One HTTP(S) server stands in for both `login.microsoftonline.com` and
//! `graph.microsoft.com`:
//! - `POST /{tenant}/oauth2/v2.0/token`, `GET /{tenant}/v2.0/.well-known/openid-configuration`,
//!   `GET /{tenant}/discovery/v2.0/keys`, `GET /common/discovery/instance` (`auth`);
//! - `/v1.0/…` Graph: users, groups, members, transitiveMembers, memberOf, delta, photos,
//!   applications, organization, `$batch` (`routes`, `delta`, `batch`);
//! - `/_emulator/…` test control API (`control`, driven in-process via [`TenantHandle`]).
//!
//! State is an in-memory `model::Directory` generated deterministically
//! (`generator`) or loaded from a JSON fixture ([`Fixture`]). Faults and throttling
//! are injected by `faults` ([`FaultConfig`]). Every Graph behaviour cites the Microsoft doc it follows.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use usersync_emulators::graph::{GraphConfig, GraphEmulator};
//! let emu = GraphEmulator::start(GraphConfig::tiny()).await?;
//! println!("token: {}/{}/oauth2/v2.0/token", emu.login_url(), usersync_emulators::graph::DEFAULT_TENANT_ID);
//! println!("graph: {}", emu.graph_url());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub(crate) mod apps;
pub(crate) mod auth;
pub(crate) mod batch;
pub mod cli;
pub(crate) mod control;
pub(crate) mod delta;
pub(crate) mod faults;
pub(crate) mod generator;
pub(crate) mod listing;
pub(crate) mod model;
pub(crate) mod odata;
pub(crate) mod photos;
pub(crate) mod props;
pub(crate) mod routes;
pub(crate) mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use auth::{AppRegistration, Secret};
pub use control::TenantHandle;
pub use faults::{
    FaultConfig, PageFault, PageFaultKind, RequestFault, RequestStats, ThrottleBudget, UrlFault,
};
pub use generator::TenantSize;
pub use model::{Fixture, GroupFields, UserFields};

use auth::{AppState, Claims, Keys};
use faults::FaultState;
use model::Directory;
use odata::{Body, GraphResponse, JSON_CT};

/// Default tenant id (GUID).
pub const DEFAULT_TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Default tenant verified domain.
pub const DEFAULT_TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
/// Client id of the default app (Directory.Read.All + User.Read.All, admin-consented).
pub const DEFAULT_CLIENT_ID: &str = "535fb089-9ff3-47b6-9bfb-4f1264799865";
/// Secret of the default app (expires in 2099).
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-secret-value~0123456789";
/// `keyId` of the default app's secret.
pub const DEFAULT_SECRET_KEY_ID: &str = "9a1e3a53-8b5c-4f0e-9d2b-6f7c1a2b3c4d";

/// Where the directory comes from.
#[derive(Clone, Debug)]
pub enum DirectorySeed {
    /// A preset size from the deterministic generator.
    Generated {
        /// Preset tenant size.
        size: TenantSize,
        /// Generator seed; the same seed yields the same directory.
        seed: u64,
    },
    /// Explicit counts for the generator.
    Custom {
        /// Number of users.
        users: u32,
        /// Number of groups.
        groups: u32,
        /// Number of group memberships.
        memberships: u32,
        /// Generator seed; the same seed yields the same directory.
        seed: u64,
    },
    /// A JSON fixture file (format: [`Fixture`]).
    FixtureFile(PathBuf),
    /// An in-memory fixture.
    Fixture(Fixture),
    /// No users or groups.
    Empty,
}

/// Emulator configuration.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Tenant id (GUID) accepted in token URLs and put in `tid`.
    pub tenant_id: String,
    /// Verified domain (`*.onmicrosoft.com`), also accepted as `{tenant}` in token URLs.
    pub tenant_domain: String,
    /// Registered apps.
    pub apps: Vec<AppRegistration>,
    /// Where the users and groups come from.
    pub directory: DirectorySeed,
    /// Fault and throttling injection.
    pub faults: FaultConfig,
    /// Extra latency for every request (benchmarks).
    pub latency: Duration,
    /// Serve HTTPS with a freshly generated test CA (see [`GraphEmulator::ca_pem`]).
    pub tls: bool,
    /// Where to write the CA PEM when `tls` is on.
    pub ca_out: Option<PathBuf>,
    /// Access token lifetime (`expires_in`), default 3599.
    pub token_lifetime_secs: u64,
    /// Delta token lifetime; Graph: 7 days for directory objects.
    pub delta_token_ttl_secs: u64,
    /// Objects per delta page.
    pub delta_page_size: usize,
    /// Max `members@delta` entries per page; bigger groups are split over pages.
    pub delta_members_per_page: usize,
    /// Bind address; `start` uses 127.0.0.1:0 when `None`.
    pub bind: Option<SocketAddr>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            tenant_id: DEFAULT_TENANT_ID.into(),
            tenant_domain: DEFAULT_TENANT_DOMAIN.into(),
            apps: vec![default_app()],
            directory: DirectorySeed::Generated {
                size: TenantSize::Tiny,
                seed: 1,
            },
            faults: FaultConfig::default(),
            latency: Duration::ZERO,
            tls: false,
            ca_out: None,
            token_lifetime_secs: 3599,
            delta_token_ttl_secs: 7 * 24 * 3600,
            delta_page_size: 100,
            delta_members_per_page: 500,
            bind: None,
        }
    }
}

/// The default app registration: [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`], granted
/// `Directory.Read.All`, `User.Read.All` and `Application.Read.All`, admin-consented.
pub fn default_app() -> AppRegistration {
    AppRegistration {
        client_id: DEFAULT_CLIENT_ID.into(),
        display_name: "usersync".into(),
        secrets: vec![Secret {
            key_id: DEFAULT_SECRET_KEY_ID.into(),
            value: DEFAULT_CLIENT_SECRET.into(),
            end: 4_102_444_800, // 2100-01-01
        }],
        certificates: Vec::new(),
        granted_roles: vec![
            "Directory.Read.All".into(),
            "User.Read.All".into(),
            "Application.Read.All".into(),
        ],
        admin_consent: true,
    }
}

impl GraphConfig {
    /// Tiny generated tenant (~50 users), seed 1.
    pub fn tiny() -> Self {
        Self::default()
    }
    /// Generated tenant of a preset size.
    pub fn sized(size: TenantSize, seed: u64) -> Self {
        GraphConfig {
            directory: DirectorySeed::Generated { size, seed },
            ..Self::default()
        }
    }
}

/// Run-time settings changeable through the handle.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub latency: Duration,
    pub token_lifetime_secs: u64,
    pub delta_ttl_secs: u64,
    /// Bumped by "invalidate delta tokens": older tokens get 410 Gone.
    pub delta_epoch: u64,
    pub clock_offset: i64,
    pub delta_page_size: usize,
    pub delta_members_per_page: usize,
}

/// State shared by all handlers.
pub(crate) struct Shared {
    pub tenant_id: String,
    pub domain: String,
    pub tls: bool,
    pub dir: RwLock<Directory>,
    pub apps: RwLock<Vec<AppState>>,
    pub settings: RwLock<Settings>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<BTreeMap<String, u64>>,
    pub keys: Keys,
    pub token_cache: Mutex<HashMap<String, Claims>>,
}

impl Shared {
    /// Emulator clock (wall clock + test offset), unix seconds.
    pub fn now(&self) -> i64 {
        let off = self.settings.read().map(|s| s.clock_offset).unwrap_or(0);
        jiff::Timestamp::now().as_second() + off
    }
    pub fn count(&self, key: &str) {
        if let Ok(mut s) = self.stats.lock() {
            *s.entry(key.to_string()).or_insert(0) += 1;
        }
    }
    /// Counts one HTTP request (for [`RequestStats::total`]).
    pub fn count_request(&self) {
        self.count("requests");
    }
}

/// A running emulator.
pub struct GraphEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl GraphEmulator {
    /// Builds the directory and starts serving (127.0.0.1:0 unless `config.bind`) in the
    /// current tokio runtime.
    pub async fn start(config: GraphConfig) -> anyhow::Result<GraphEmulator> {
        let now = jiff::Timestamp::now().as_second();
        let mut dir = match &config.directory {
            DirectorySeed::Generated { size, seed } => {
                let (u, g, m) = size.counts();
                generator::generate(u, g, m, *seed, &config.tenant_domain)
            }
            DirectorySeed::Custom {
                users,
                groups,
                memberships,
                seed,
            } => generator::generate(*users, *groups, *memberships, *seed, &config.tenant_domain),
            DirectorySeed::FixtureFile(p) => {
                let fx: Fixture = serde_json::from_slice(&std::fs::read(p)?)?;
                let mut d = Directory::new(&config.tenant_domain);
                d.load_fixture(&fx, now)?;
                d
            }
            DirectorySeed::Fixture(fx) => {
                let mut d = Directory::new(&config.tenant_domain);
                d.load_fixture(fx, now)?;
                d
            }
            DirectorySeed::Empty => Directory::new(&config.tenant_domain),
        };
        // Everything that exists at start-up is "sequence 0"; later changes count from 1.
        dir.seq = dir.seq.max(1);
        let apps = config
            .apps
            .iter()
            .cloned()
            .map(AppState::new)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            tenant_id: config.tenant_id.clone(),
            domain: config.tenant_domain.clone(),
            tls: config.tls,
            dir: RwLock::new(dir),
            apps: RwLock::new(apps),
            settings: RwLock::new(Settings {
                latency: config.latency,
                token_lifetime_secs: config.token_lifetime_secs,
                delta_ttl_secs: config.delta_token_ttl_secs,
                delta_epoch: 0,
                clock_offset: 0,
                delta_page_size: config.delta_page_size.max(1),
                delta_members_per_page: config.delta_members_per_page.max(1),
            }),
            faults: Mutex::new(FaultState::new(config.faults.clone())),
            stats: Mutex::new(BTreeMap::new()),
            keys: Keys::load()?,
            token_cache: Mutex::new(HashMap::new()),
        });
        let app = router(shared.clone());
        let bind = config
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (task, ca_pem) = if config.tls {
            let material = tls::generate()?;
            if let Some(p) = &config.ca_out {
                std::fs::write(p, &material.ca_pem)?;
            }
            let ca = material.ca_pem.clone();
            let l = tls::TlsListener::new(listener, material.server_config()?);
            let task = tokio::spawn(async move {
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
            (task, Some(ca))
        } else {
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
            (task, None)
        };
        Ok(GraphEmulator {
            shared,
            addr,
            ca_pem,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    fn scheme(&self) -> &'static str {
        if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Login (authority host) base URL, e.g. `http://127.0.0.1:PORT`; the token endpoint is
    /// `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub fn login_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }
    /// Graph base URL, e.g. `http://127.0.0.1:PORT/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}://{}/v1.0", self.scheme(), self.addr)
    }
    /// Token endpoint URL for the configured tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url(),
            self.shared.tenant_id
        )
    }
    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// PEM of the test CA when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }
    /// Handle to mutate directory, apps, faults and settings.
    pub fn tenant(&self) -> TenantHandle {
        TenantHandle::new(self.shared.clone())
    }
    /// Snapshot of the request counters.
    pub fn stats(&self) -> RequestStats {
        self.tenant().stats()
    }
    /// Resets the request counters.
    pub fn reset_stats(&self) {
        self.tenant().reset_stats()
    }
    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for GraphEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(auth::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(auth::jwks))
        .route("/common/discovery/instance", get(auth::instance_discovery))
        .nest("/_emulator", control::router())
        .route("/v1.0", axum::routing::any(graph_entry))
        .route("/v1.0/{*rest}", axum::routing::any(graph_entry))
        .with_state(shared)
}

/// Per-request context for Graph handlers.
pub(crate) struct Ctx<'a> {
    pub sh: &'a Shared,
    pub claims: &'a Claims,
    /// `{scheme}://{host}/v1.0` as the client addressed us.
    pub graph_base: String,
    pub request_id: String,
    pub client_request_id: String,
}

impl Ctx<'_> {
    /// `innerError.date` format.
    pub fn date(&self) -> String {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }
    pub fn err(&self, e: odata::GraphError) -> GraphResponse {
        e.into_response(&self.request_id, &self.client_request_id, &self.date())
    }
}

/// Entry point for every `/v1.0/…` request.
async fn graph_entry(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    sh.count_request();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let latency = sh.settings.read().map(|s| s.latency).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = parts
        .uri
        .path()
        .strip_prefix("/v1.0")
        .unwrap_or("")
        .to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let graph_base = format!("{}/v1.0", auth::base_url(&sh, &parts.headers));
    let (resp, delay) = match auth::check_bearer(&sh, &parts.headers) {
        Err(e) => {
            sh.count("unauthorized");
            let date = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string();
            (e.into_response(&request_id, &client_request_id, &date), 0)
        }
        Ok(claims) => {
            let ctx = Ctx {
                sh: &sh,
                claims: &claims,
                graph_base,
                request_id: request_id.clone(),
                client_request_id: client_request_id.clone(),
            };
            if path == "/$batch" {
                sh.count("batch");
                if parts.method != axum::http::Method::POST {
                    (ctx.err(routes::method_not_allowed()), 0)
                } else {
                    batch::handle(&ctx, &body)
                }
            } else {
                routes::exec(&ctx, parts.method.as_str(), &path, &query, &parts.headers)
            }
        }
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    render(resp, &request_id, &client_request_id)
}

/// Turns a [`GraphResponse`] into an HTTP response with Graph's common headers.
/// <https://learn.microsoft.com/graph/json-batching> (header examples).
fn render(r: GraphResponse, request_id: &str, client_request_id: &str) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (ct, bytes) = match r.body {
        Body::Json(v) => (JSON_CT, v.to_string().into_bytes()),
        Body::Bytes(b, ct) => (ct, b),
        Body::Text(t) => ("text/plain", t.into_bytes()),
    };
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    let mut put = |k: &str, v: &str| {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_str(v)) {
            h.insert(k, v);
        }
    };
    put("content-type", ct);
    put("cache-control", "no-cache");
    put("odata-version", "4.0");
    put("request-id", request_id);
    put("client-request-id", client_request_id);
    put("strict-transport-security", "max-age=31536000");
    put(
        "x-ms-ags-diagnostic",
        r#"{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"usersync-emulator"}}"#,
    );
    for (k, v) in &r.headers {
        put(k, v);
    }
    resp
}
