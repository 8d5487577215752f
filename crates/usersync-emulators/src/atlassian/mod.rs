//! In-memory emulators of the Atlassian Data Center REST surfaces usersync provisions into:
//! Jira (`/rest/api/2`), Confluence (`/rest/api`), Bitbucket (`/rest/api/1.0`) and Crowd
//! (`/rest/usermanagement/1`).
//!
//! One [`AtlassianEmulator`] serves one product over one in-memory directory
//! ([`directory`]), with the product's own URLs, parameters, paging fields, status codes and
//! error bodies (each handler cites the Atlassian documentation or OpenAPI it follows). Latency, rate limiting, fault
//! injection and request counting are in [`faults`]; tests read and change the state through
//! [`DirectoryHandle`] or `GET {base}/_emulator/state` and `/_emulator/stats` (module `control`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};
//! let emu = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira)).await?;
//! println!("{}", emu.base_url()); // http://127.0.0.1:PORT/jira
//! assert!(emu.handle().user("admin").is_some());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

// Handlers short-circuit with a finished `Response` as the error value (`?` on lookups and auth);
// it is returned to axum straight away, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

mod bitbucket;
pub mod cli;
mod confluence;
mod control;
mod crowd;
pub mod directory;
pub mod faults;
mod jira;

pub use directory::{AppRole, Avatar, DirectoryHandle, Group, SeedUser, Snapshot, User};
pub use faults::{FailRule, FaultConfig, RateLimit, RequestStats};

use directory::{State, lc};
use faults::FaultState;

/// The emulated product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Jira Data Center, REST v2.
    Jira,
    /// Confluence Data Center, `/rest/api`.
    Confluence,
    /// Bitbucket Data Center, `/rest/api/1.0`.
    Bitbucket,
    /// Crowd Data Center, `/rest/usermanagement/1`.
    Crowd,
}

impl Product {
    /// Lower-case name (`jira`, ...), also the default context path.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
            Product::Bitbucket => "bitbucket",
            Product::Crowd => "crowd",
        }
    }
}

/// Emulator configuration. [`AtlassianConfig::new`] gives working defaults.
#[derive(Debug, Clone)]
pub struct AtlassianConfig {
    /// Which product to serve.
    pub product: Product,
    /// Context path such as `/jira` (empty for none).
    pub context_path: String,
    /// Administrator login (Basic auth). Seeded as a user in the admin group unless the seed
    /// list already has it.
    pub admin_user: String,
    /// Administrator password.
    pub admin_password: String,
    /// Personal access token accepted as `Authorization: Bearer` for the admin (Jira 8.14+,
    /// Confluence 7.9+, Bitbucket HTTP access tokens). Ignored by Crowd.
    pub pat: Option<String>,
    /// Crowd application name and password (Crowd authenticates applications, not users).
    pub crowd_app: (String, String),
    /// Remote addresses the Crowd application may call from (Crowd "Remote addresses"); others
    /// get Crowd's 403 HTML page. Default: 127.0.0.1 and ::1.
    pub crowd_allowed_addresses: Vec<std::net::IpAddr>,
    /// Initial faults, latency and rate limit.
    pub faults: FaultConfig,
    /// Added latency (copied into `faults.latency` at start when non-zero).
    pub latency: Duration,
    /// Token-bucket rate limit (copied into `faults.rate_limit` at start when set).
    pub rate_limit: Option<RateLimit>,
    /// Pre-existing accounts (unmanaged by usersync).
    pub seed: Vec<SeedUser>,
    /// Pre-existing groups.
    pub seed_groups: Vec<String>,
    /// Groups whose members are product administrators.
    pub admin_groups: Vec<String>,
    /// Groups whose members consume a licence seat (Confluence `confluence-users`, Bitbucket
    /// groups holding `LICENSED_USER`); for Jira the application roles' groups.
    pub licensed_groups: Vec<String>,
    /// Default group new users are added to (Confluence `confluence-users`, Bitbucket
    /// `addToDefaultGroup` -> `stash-users`).
    pub default_group: Option<String>,
    /// Jira application roles.
    pub application_roles: Vec<AppRole>,
    /// Licence seats (`None` = unlimited).
    pub licence_seats: Option<usize>,
    /// Jira `/user/search` result cap (1000 on real Jira, JRASERVER-65089).
    pub jira_search_cap: usize,
    /// A server-side cap on Crowd's `max-results` (none by default). Crowd documents no such
    /// cap, but a proxy or a future version could impose one; a test sets it to check the
    /// target pages until an empty page instead of trusting a short page.
    pub crowd_results_cap: Option<usize>,
    /// Confluence: whether `/rest/api/user/list` honours `expand=status` (default true). A
    /// test turns it off to check the target does not guess a missing status.
    pub confluence_list_status: bool,
    /// Confluence: whether `GET /rest/api/user` honours `expand=status` (default true).
    pub confluence_user_status: bool,
}

impl AtlassianConfig {
    /// Defaults for `product`: context path `/<product>`, admin `admin`/`admin`, PAT
    /// `emulator-pat`, Crowd app `usersync`/`usersync`, the product's licence group
    /// (`jira-software-users`, `confluence-users`, `stash-users`) and an existing `admin` account
    /// in the admin group.
    pub fn new(product: Product) -> Self {
        let (admin_groups, licensed, default_group, roles): (
            Vec<&str>,
            Vec<&str>,
            Option<&str>,
            Vec<AppRole>,
        ) = match product {
            Product::Jira => (
                vec!["jira-administrators"],
                vec!["jira-software-users"],
                None,
                vec![
                    // Example ApplicationRoleBean in the Jira 10.3 OpenAPI.
                    AppRole {
                        key: "jira-software".into(),
                        name: "Jira Software".into(),
                        groups: vec!["jira-software-users".into(), "jira-administrators".into()],
                        default_groups: vec!["jira-software-users".into()],
                        selected_by_default: true,
                        seats: None,
                    },
                    AppRole {
                        key: "jira-core".into(),
                        name: "Jira Core".into(),
                        groups: vec!["jira-core-users".into()],
                        default_groups: vec!["jira-core-users".into()],
                        selected_by_default: false,
                        seats: None,
                    },
                ],
            ),
            Product::Confluence => (
                vec!["confluence-administrators"],
                vec!["confluence-users"],
                Some("confluence-users"),
                vec![],
            ),
            Product::Bitbucket => (
                vec!["stash-administrators"],
                vec!["stash-users"],
                Some("stash-users"),
                vec![],
            ),
            Product::Crowd => (vec!["crowd-administrators"], vec![], None, vec![]),
        };
        let mut admin_seed_groups: Vec<&str> = admin_groups.clone();
        admin_seed_groups.extend(licensed.iter().copied());
        let admin = SeedUser {
            name: "admin".into(),
            display_name: "Administrator".into(),
            email: "admin@example.com".into(),
            password: "admin".into(),
            active: true,
            groups: admin_seed_groups.iter().map(|s| s.to_string()).collect(),
        };
        let mut seed_groups: Vec<String> = admin_groups.iter().map(|s| s.to_string()).collect();
        seed_groups.extend(licensed.iter().map(|s| s.to_string()));
        if product == Product::Jira {
            seed_groups.push("jira-core-users".into());
        }
        AtlassianConfig {
            product,
            context_path: format!("/{}", product.as_str()),
            admin_user: "admin".into(),
            admin_password: "admin".into(),
            pat: Some("emulator-pat".into()),
            crowd_app: ("usersync".into(), "usersync".into()),
            crowd_allowed_addresses: vec![
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ],
            faults: FaultConfig::default(),
            latency: Duration::ZERO,
            rate_limit: None,
            seed: if product == Product::Crowd {
                vec![]
            } else {
                vec![admin]
            },
            seed_groups,
            admin_groups: admin_groups.iter().map(|s| s.to_string()).collect(),
            licensed_groups: licensed.iter().map(|s| s.to_string()).collect(),
            default_group: default_group.map(str::to_string),
            application_roles: roles,
            licence_seats: None,
            jira_search_cap: 1000,
            crowd_results_cap: None,
            confluence_list_status: true,
            confluence_user_status: true,
        }
    }

    /// Adds `n` pre-existing unmanaged accounts `user0001`.. in the licence group.
    pub fn with_seed_users(mut self, n: usize) -> Self {
        let groups: Vec<String> = self.licensed_groups.clone();
        for i in 1..=n {
            let mut s = SeedUser::new(&format!("user{i:04}"));
            s.display_name = format!("User {i:04}");
            s.groups = groups.clone();
            self.seed.push(s);
        }
        self
    }
}

/// State shared by the server tasks and every [`DirectoryHandle`].
pub(crate) struct Shared {
    pub product: Product,
    pub context_path: String,
    pub admin_user: String,
    pub admin_password: String,
    pub pat: Option<String>,
    pub crowd_app: (String, String),
    pub crowd_allowed: Mutex<Vec<std::net::IpAddr>>,
    pub default_group: Option<String>,
    pub jira_search_cap: usize,
    pub crowd_results_cap: Option<usize>,
    pub confluence_list_status: bool,
    pub confluence_user_status: bool,
    pub base_url: OnceLock<String>,
    pub state: Mutex<State>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<RequestStats>,
}

impl Shared {
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT/ctx`.
    pub fn base(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("")
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Login name (the admin user for a PAT; the application name for Crowd).
    pub name: String,
    /// Product administrator.
    pub admin: bool,
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// Resolves the caller from Basic (admin or any active directory user with its password) or a
/// Bearer PAT (the admin's token). Crowd: Basic with the application name and password.
pub(crate) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<Caller> {
    if shared.product == Product::Crowd {
        let (u, p) = basic_credentials(headers)?;
        return (u == shared.crowd_app.0 && p == shared.crowd_app.1).then_some(Caller {
            name: u,
            admin: true,
        });
    }
    if let Some(t) = bearer(headers) {
        return (shared.pat.as_deref() == Some(t.as_str())).then(|| Caller {
            name: shared.admin_user.clone(),
            admin: true,
        });
    }
    let (u, p) = basic_credentials(headers)?;
    if lc(&u) == lc(&shared.admin_user) && p == shared.admin_password {
        let name = shared
            .lock_state()
            .user(&u)
            .map(|x| x.name.clone())
            .unwrap_or(shared.admin_user.clone());
        return Some(Caller { name, admin: true });
    }
    let st = shared.lock_state();
    let user = st.user(&u)?;
    (user.active && user.password.as_deref() == Some(p.as_str())).then(|| Caller {
        name: user.name.clone(),
        admin: st.is_admin(user),
    })
}

/// Requires an authenticated caller: 401 in the product's shape otherwise.
pub(crate) fn require_user(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    authenticate(shared, headers).ok_or_else(|| unauthorized(shared.product))
}

/// Requires an administrator: 401 when unauthenticated; 403 for a non-admin (Bitbucket answers
/// 401 for insufficient permission, per the Bitbucket 9.4 OpenAPI's admin operations).
pub(crate) fn require_admin(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    let c = require_user(shared, headers)?;
    if c.admin {
        return Ok(c);
    }
    Err(match shared.product {
        Product::Bitbucket => bitbucket::error(
            401,
            "You are not permitted to access this resource",
            "com.atlassian.bitbucket.AuthorisationException",
        ),
        Product::Jira => jira::error(
            403,
            &["You do not have the permission to perform this operation."],
            &[],
        ),
        p => product_error(p, 403, "User is not permitted to perform this operation"),
    })
}

fn unauthorized(product: Product) -> Response {
    let mut r = match product {
        // Crowd: application authentication failure (the text of python-crowd's
        // `crowdserverstub.py`; Crowd's own body is not documented).
        Product::Crowd => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
            "Application failed to authenticate",
        )
            .into_response(),
        Product::Bitbucket => bitbucket::error(
            401,
            "Authentication failed. Please check your credentials and try again.",
            "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
        ),
        Product::Jira => jira::error(
            401,
            &["You are not authenticated. Authentication required to perform this operation."],
            &[],
        ),
        Product::Confluence => product_error(product, 401, "This resource requires authentication"),
    };
    let realm = match product {
        Product::Crowd => "Basic realm=\"Crowd REST Service\"",
        Product::Bitbucket => "Basic realm=\"Bitbucket\"",
        Product::Jira => "Basic realm=\"protected-area\"",
        Product::Confluence => "Basic realm=\"Confluence\"",
    };
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(realm));
    r
}

/// An error response in the product's documented error shape with a generic reason.
pub(crate) fn product_error(product: Product, status: u16, message: &str) -> Response {
    match product {
        Product::Jira => jira::error(status, &[message], &[]),
        Product::Confluence => confluence::error(status, message),
        Product::Bitbucket => {
            bitbucket::error(status, message, "com.atlassian.bitbucket.ServiceException")
        }
        Product::Crowd => {
            let reason = match status {
                401 => "INVALID_USER_AUTHENTICATION",
                403 => "APPLICATION_PERMISSION_DENIED",
                _ => "OPERATION_FAILED",
            };
            crowd::error(status, reason, message)
        }
    }
}

/// JSON response helper.
pub(crate) fn json(status: u16, v: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(v)).into_response()
}

/// Empty response with a status.
pub(crate) fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Query parameters, parsed leniently (never rejects a request).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    /// Non-empty value.
    pub fn val(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }

    pub fn num(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.trim().parse().ok())
    }

    /// Boolean parameter (`true`/`false`, case-insensitive), with a default.
    pub fn flag(&self, k: &str, default: bool) -> bool {
        match self.get(k).map(str::to_ascii_lowercase).as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => default,
        }
    }
}

/// Parses a JSON body; `None` for an empty or malformed body.
pub(crate) fn parse_body(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// Reads a string field.
pub(crate) fn s(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_string)
}

/// Reads a boolean field, accepting the strings "true"/"false" as Jackson does by default
/// (atlassian-python-api sends `"active": "false"` to Jira).
/// A group name the products refuse: blank, or containing a control character (U+0000…U+001F,
/// U+007F). Jira, Confluence, Crowd and Bitbucket store group names in an embedded
/// directory whose database columns cannot hold NUL, and their admin UIs reject control
/// characters; the emulator refuses them the same way instead of creating an unusable group.
pub(crate) fn bad_group_name(name: &str) -> bool {
    name.trim().is_empty() || name.chars().any(char::is_control)
}

pub(crate) fn b(v: &serde_json::Value, k: &str) -> Option<bool> {
    match v.get(k)? {
        serde_json::Value::Bool(x) => Some(*x),
        serde_json::Value::String(x) if x.eq_ignore_ascii_case("true") => Some(true),
        serde_json::Value::String(x) if x.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Rewrites version aliases and Crowd's `.json`/`.xml` suffix before routing, so that
/// `/rest/api/latest` (Jira, Bitbucket: Atlassian REST plugin framework convention),
/// `/rest/usermanagement/latest` and `/user.json` (Crowd's content negotiation,
/// `developer.atlassian.com/server/crowd/crowd-rest-resources/`) hit the same routes.
fn rewrite(product: Product, ctx: &str, mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    let rel = path.strip_prefix(ctx).unwrap_or(&path);
    let mut new_rel = rel.to_string();
    let mut accept: Option<&'static str> = None;
    match product {
        Product::Jira => {
            if let Some(r) = rel.strip_prefix("/rest/api/latest/") {
                new_rel = format!("/rest/api/2/{r}");
            }
        }
        Product::Bitbucket => {
            if let Some(r) = rel.strip_prefix("/rest/api/latest/") {
                new_rel = format!("/rest/api/1.0/{r}");
            }
        }
        Product::Crowd => {
            if let Some(r) = rel.strip_prefix("/rest/usermanagement/latest/") {
                new_rel = format!("/rest/usermanagement/1/{r}");
            }
            if let Some(r) = new_rel.strip_suffix(".json") {
                new_rel = r.to_string();
                accept = Some("application/json");
            } else if let Some(r) = new_rel.strip_suffix(".xml") {
                new_rel = r.to_string();
                accept = Some("application/xml");
            }
        }
        Product::Confluence => {}
    }
    if new_rel != rel {
        let pq = match req.uri().query() {
            Some(q) => format!("{}{}?{}", &path[..path.len() - rel.len()], new_rel, q),
            None => format!("{}{}", &path[..path.len() - rel.len()], new_rel),
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
    if let Some(a) = accept {
        req.headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static(a));
    }
    req
}

/// A running emulator.
pub struct AtlassianEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl AtlassianEmulator {
    /// Starts the emulator on `127.0.0.1:0` in the current tokio runtime.
    pub async fn start(config: AtlassianConfig) -> anyhow::Result<AtlassianEmulator> {
        Self::start_on(config, "127.0.0.1:0".parse()?).await
    }

    /// Starts the emulator on a given address.
    pub async fn start_on(
        config: AtlassianConfig,
        bind: SocketAddr,
    ) -> anyhow::Result<AtlassianEmulator> {
        let ctx = normalize_ctx(&config.context_path);
        let mut faults = config.faults.clone();
        if !config.latency.is_zero() {
            faults.latency = config.latency;
        }
        if config.rate_limit.is_some() {
            faults.rate_limit = config.rate_limit;
        }
        let mut st = State {
            roles: config.application_roles.clone(),
            seats: config.licence_seats,
            ..State::default()
        };
        for r in &mut st.roles {
            r.seats = config.licence_seats;
        }
        st.admin_groups = config.admin_groups.iter().map(|g| lc(g)).collect();
        st.licensed_groups = config.licensed_groups.iter().map(|g| lc(g)).collect();
        for r in &config.application_roles {
            st.licensed_groups.extend(r.groups.iter().map(|g| lc(g)));
        }
        if config.product == Product::Bitbucket {
            // Bitbucket licences through the LICENSED_USER global permission held by groups.
            for g in &config.licensed_groups {
                st.group_permissions.insert(lc(g), "LICENSED_USER".into());
            }
            for g in &config.admin_groups {
                st.group_permissions.insert(lc(g), "SYS_ADMIN".into());
            }
        }
        let shared = Arc::new(Shared {
            product: config.product,
            context_path: ctx.clone(),
            admin_user: config.admin_user.clone(),
            admin_password: config.admin_password.clone(),
            pat: config.pat.clone(),
            crowd_app: config.crowd_app.clone(),
            crowd_allowed: Mutex::new(config.crowd_allowed_addresses.clone()),
            default_group: config.default_group.clone(),
            jira_search_cap: config.jira_search_cap,
            crowd_results_cap: config.crowd_results_cap,
            confluence_list_status: config.confluence_list_status,
            confluence_user_status: config.confluence_user_status,
            base_url: OnceLock::new(),
            state: Mutex::new(st),
            faults: Mutex::new(FaultState {
                config: faults,
                ..FaultState::default()
            }),
            stats: Mutex::new(RequestStats::default()),
        });
        let handle = DirectoryHandle {
            shared: shared.clone(),
        };
        for g in &config.seed_groups {
            handle.seed_group(g);
        }
        for g in &config.admin_groups {
            handle.seed_group(g);
        }
        for u in &config.seed {
            handle.seed_user(u.clone());
        }
        if config.product != Product::Crowd && handle.user(&config.admin_user).is_none() {
            let mut s = SeedUser::new(&config.admin_user);
            s.password = config.admin_password.clone();
            s.groups = config.admin_groups.clone();
            handle.seed_user(s);
        }

        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let _ = shared.base_url.set(format!("http://{addr}{ctx}"));

        let api: Router<Arc<Shared>> = match config.product {
            Product::Jira => jira::routes(),
            Product::Confluence => confluence::routes(),
            Product::Bitbucket => bitbucket::routes(),
            Product::Crowd => crowd::routes().layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                crowd::negotiate,
            )),
        };
        let api = api
            .merge(control::routes())
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                faults::middleware,
            ));
        let router: Router<Arc<Shared>> = if ctx.is_empty() {
            api.fallback(faults::not_found)
        } else {
            Router::new().nest(&ctx, api).fallback(faults::not_found)
        };
        let router = router.with_state(shared.clone());
        let product = config.product;
        let ctx2 = ctx.clone();
        let app = tower::ServiceExt::map_request(router, move |req: Request| {
            rewrite(product, &ctx2, req)
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Connect info lets Crowd check the caller's address against the allow-list.
            let svc =
                axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
            let _ = axum::serve(listener, svc)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(AtlassianEmulator {
            shared,
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// Base URL including the context path, without a trailing slash, e.g.
    /// `http://127.0.0.1:PORT/jira`.
    pub fn base_url(&self) -> String {
        self.shared.base().to_string()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The served product.
    pub fn product(&self) -> Product {
        self.shared.product
    }

    /// A handle on the directory, faults and statistics.
    pub fn handle(&self) -> DirectoryHandle {
        DirectoryHandle {
            shared: self.shared.clone(),
        }
    }

    /// A copy of the request counters.
    pub fn stats(&self) -> RequestStats {
        self.handle().stats()
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        self.handle().reset_stats();
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for AtlassianEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl DirectoryHandle {
    /// A copy of the request counters.
    pub fn stats(&self) -> RequestStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = RequestStats::default();
    }

    /// The emulated product.
    pub fn product(&self) -> Product {
        self.shared.product
    }

    /// Replaces the Crowd application's allowed remote addresses.
    pub fn set_crowd_allowed_addresses(&self, addrs: Vec<std::net::IpAddr>) {
        *self
            .shared
            .crowd_allowed
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = addrs;
    }
}

fn normalize_ctx(c: &str) -> String {
    let t = c.trim().trim_end_matches('/');
    if t.is_empty() {
        String::new()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// Start/limit paging over a slice: returns the page and whether it is the last.
pub(crate) fn page<T: Clone>(all: &[T], start: usize, limit: usize) -> (Vec<T>, bool) {
    let end = start.saturating_add(limit).min(all.len());
    let items = if start >= all.len() {
        Vec::new()
    } else {
        all[start..end].to_vec()
    };
    (items, end >= all.len())
}

/// Percent-encodes a value for a query string or path segment in self links.
pub(crate) fn enc(v: &str) -> String {
    // RFC 3986 unreserved characters stay as they are.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(v, SET).to_string()
}
