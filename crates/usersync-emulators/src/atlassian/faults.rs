//! Latency, rate limiting, fault injection and request counting, applied by one middleware in
//! front of every product route.
//!
//! Rate limiting follows Jira Data Center's documented token bucket (Jira admin docs "Improving
//! instance stability with rate limiting" and "Adjusting your code for rate limiting"): every
//! affected response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Interval-Seconds`, `X-RateLimit-FillRate` and `Retry-After` (0 while tokens
//! remain); an empty bucket answers 429. Bitbucket documents the same token-bucket model
//! ("Improving instance stability with rate limiting", Bitbucket 8.10 admin docs); its header
//! names are not documented, so the Jira ones are used for every product.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Shared, product_error};

/// Token-bucket rate limit (Jira DC rate limiting model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Bucket size (`X-RateLimit-Limit`).
    pub capacity: u32,
    /// Tokens added every interval (`X-RateLimit-FillRate`).
    pub fill_rate: u32,
    /// Refill interval in seconds (`X-RateLimit-Interval-Seconds`).
    pub interval_secs: u32,
}

impl RateLimit {
    /// Parses `CAPACITY/FILL/INTERVAL_SECS`, e.g. `10/1/1`, or a bare `N` meaning `N/N/1`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let num = |p: &str| -> anyhow::Result<u32> {
            p.trim()
                .parse::<u32>()
                .map_err(|e| anyhow::anyhow!("bad rate limit {s:?}: {e}"))
        };
        let rl = match parts.as_slice() {
            [n] => RateLimit {
                capacity: num(n)?,
                fill_rate: num(n)?,
                interval_secs: 1,
            },
            [c, f, i] => RateLimit {
                capacity: num(c)?,
                fill_rate: num(f)?,
                interval_secs: num(i)?,
            },
            _ => anyhow::bail!("rate limit must be N or CAPACITY/FILL/INTERVAL_SECS"),
        };
        anyhow::ensure!(
            rl.capacity > 0 && rl.fill_rate > 0 && rl.interval_secs > 0,
            "rate limit values must be positive"
        );
        Ok(rl)
    }
}

/// Fails matching requests with a status and the product's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailRule {
    /// HTTP method to match (`None` = any).
    pub method: Option<String>,
    /// Route template to match, as counted in [`RequestStats`], e.g. `/rest/api/2/user`
    /// (`None` = any).
    pub route: Option<String>,
    /// Fail only the `nth` matching request (1-based); `0` fails every matching request.
    pub nth: u64,
    /// Status to answer with.
    pub status: u16,
    /// Message put into the product's error body.
    pub message: String,
}

impl FailRule {
    /// Fails the `nth` request of any kind with `status`.
    pub fn nth_request(nth: u64, status: u16) -> Self {
        FailRule {
            method: None,
            route: None,
            nth,
            status,
            message: "Injected failure".into(),
        }
    }

    /// Fails every request `METHOD route` with `status`.
    pub fn every(method: &str, route: &str, status: u16) -> Self {
        FailRule {
            method: Some(method.to_string()),
            route: Some(route.to_string()),
            nth: 0,
            status,
            message: "Injected failure".into(),
        }
    }
}

/// What goes wrong, and how slowly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Added to every request before it is handled.
    pub latency: Duration,
    /// Token bucket; `None` = rate limiting disabled (the products' default).
    pub rate_limit: Option<RateLimit>,
    /// Answer every request with 503 (maintenance / node starting).
    pub maintenance: bool,
    /// Answer the next N requests with 429.
    pub throttle_next: u32,
    /// `Retry-After` seconds for injected 429s and 503s.
    pub retry_after_secs: u64,
    /// Failure rules.
    pub fail_rules: Vec<FailRule>,
    /// Lower-cased user name -> (status, message): writes creating/changing that user fail.
    pub fail_users: BTreeMap<String, (u16, String)>,
    /// A proxy in front of the product answers every request with `200 OK` and an HTML login
    /// page; nothing reaches the product.
    pub html_login_page: bool,
    /// Every request is answered 401 with a body that echoes the `Authorization` header back
    /// (some proxies and misconfigured products do).
    pub reflect_authorization_401: bool,
    /// The next N writes are applied by the product, then answered `502 Bad Gateway` (a gateway
    /// that timed out waiting for the answer).
    pub bad_gateway_after_write: u32,
}

pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
pub(crate) struct FaultState {
    pub config: FaultConfig,
    pub buckets: HashMap<String, Bucket>,
    /// Matches seen per rule index.
    pub rule_hits: HashMap<usize, u64>,
}

/// Per-route request counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RequestStats {
    /// `"METHOD /route/template"` -> count. The template has the context path removed, e.g.
    /// `POST /rest/api/2/user` or `PUT /rest/api/user/{username}/group/{groupName}`.
    pub requests: BTreeMap<String, u64>,
    /// Non-GET/HEAD/OPTIONS requests.
    pub writes: u64,
    /// All requests.
    pub total: u64,
    /// The first [`LOG_CAP`] requests in arrival order, as `"METHOD /path?query"` (context path
    /// removed), so tests can check what was asked before what (e.g. a re-read before a
    /// removal). Not served by `/_emulator/stats`.
    #[serde(skip)]
    pub log: Vec<String>,
}

/// Requests kept in [`RequestStats::log`].
pub const LOG_CAP: usize = 10_000;

impl RequestStats {
    /// Count for one `"METHOD /route"` key (0 if never called).
    pub fn get(&self, key: &str) -> u64 {
        self.requests.get(key).copied().unwrap_or(0)
    }

    /// Number of write requests.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Number of requests.
    pub fn total(&self) -> u64 {
        self.total
    }
}

fn is_write(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Route key without the context path.
fn route_key(
    shared: &Shared,
    method: &Method,
    matched: Option<&MatchedPath>,
    uri_path: &str,
) -> String {
    let p = matched.map(|m| m.as_str()).unwrap_or(uri_path);
    let p = p.strip_prefix(shared.context_path.as_str()).unwrap_or(p);
    format!("{method} {p}")
}

/// The middleware: counts, delays, fails or throttles, then calls the handler.
pub(crate) async fn middleware(
    State(shared): State<Arc<Shared>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let key = route_key(&shared, req.method(), matched.as_ref(), req.uri().path());
    let route = key
        .split_once(' ')
        .map(|(_, r)| r.to_string())
        .unwrap_or_default();
    if route.starts_with("/_emulator") {
        return next.run(req).await;
    }
    {
        let mut st = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        *st.requests.entry(key.clone()).or_default() += 1;
        st.total += 1;
        if st.log.len() < LOG_CAP {
            let path = req.uri().path();
            let path = path
                .strip_prefix(shared.context_path.as_str())
                .unwrap_or(path);
            let entry = match req.uri().query() {
                Some(q) => format!("{} {path}?{q}", req.method()),
                None => format!("{} {path}", req.method()),
            };
            st.log.push(entry);
        }
        if is_write(req.method()) {
            st.writes += 1;
        }
    }
    let cred = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_string();
    let (latency, early, rl_headers) = {
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        let latency = f.config.latency;
        let retry = f.config.retry_after_secs;
        let mut early: Option<Response> = None;
        if f.config.html_login_page {
            early = Some(
                (
                    StatusCode::OK,
                    [("content-type", "text/html;charset=UTF-8")],
                    "<html><head><title>Log in</title></head><body><form action=\"/login\">Single sign-on: please log in</form></body></html>",
                )
                    .into_response(),
            );
        } else if f.config.reflect_authorization_401 {
            early = Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "text/plain")],
                    format!("Unauthorized. Request headers: Authorization: {cred}"),
                )
                    .into_response(),
            );
        } else if f.config.maintenance {
            let mut r = product_error(shared.product, 503, "Service Unavailable: maintenance");
            set_header(r.headers_mut(), "retry-after", &retry.to_string());
            early = Some(r);
        } else if f.config.throttle_next > 0 {
            f.config.throttle_next -= 1;
            early = Some(too_many(shared.product, retry, None));
        } else {
            let method = req.method().as_str().to_string();
            let mut hit: Option<(u16, String)> = None;
            let rules = f.config.fail_rules.clone();
            for (i, r) in rules.iter().enumerate() {
                let m_ok = r
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&method));
                let r_ok = r.route.as_deref().is_none_or(|x| x == route);
                if m_ok && r_ok {
                    let n = f.rule_hits.entry(i).or_default();
                    *n += 1;
                    if hit.is_none() && (r.nth == 0 || *n == r.nth) {
                        hit = Some((r.status, r.message.clone()));
                    }
                }
            }
            if let Some((status, msg)) = hit {
                let mut r = product_error(shared.product, status, &msg);
                if status == 429 || status == 503 {
                    set_header(r.headers_mut(), "retry-after", &retry.to_string());
                }
                early = Some(r);
            }
        }
        let mut rl_headers = None;
        if early.is_none()
            && let Some(rl) = f.config.rate_limit
        {
            let now = Instant::now();
            let b = f.buckets.entry(cred).or_insert(Bucket {
                tokens: rl.capacity as f64,
                last: now,
            });
            // Continuous refill: fill_rate tokens per interval (Jira KB "rate limiting is not
            // working as configured": 15/min allows a 16th request thanks to the refill).
            let per_sec = rl.fill_rate as f64 / rl.interval_secs as f64;
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * per_sec)
                .min(rl.capacity as f64);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                rl_headers = Some((rl, b.tokens.floor() as u64, 0));
            } else {
                let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64;
                early = Some(too_many(shared.product, wait, Some((rl, 0))));
            }
        }
        (latency, early, rl_headers)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(r) = early {
        return r;
    }
    let gateway_error = is_write(req.method()) && {
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        let hit = f.config.bad_gateway_after_write > 0;
        if hit {
            f.config.bad_gateway_after_write -= 1;
        }
        hit
    };
    let mut resp = next.run(req).await;
    if gateway_error {
        return (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    if let Some((rl, remaining, retry)) = rl_headers {
        add_rl_headers(resp.headers_mut(), rl, remaining, retry);
    }
    resp
}

fn set_header(h: &mut HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

fn add_rl_headers(h: &mut HeaderMap, rl: RateLimit, remaining: u64, retry: u64) {
    set_header(h, "x-ratelimit-limit", &rl.capacity.to_string());
    set_header(h, "x-ratelimit-remaining", &remaining.to_string());
    set_header(
        h,
        "x-ratelimit-interval-seconds",
        &rl.interval_secs.to_string(),
    );
    set_header(h, "x-ratelimit-fillrate", &rl.fill_rate.to_string());
    set_header(h, "retry-after", &retry.to_string());
}

/// 429 with `Retry-After` (and the `X-RateLimit-*` headers when the bucket is configured).
fn too_many(product: super::Product, retry: u64, rl: Option<(RateLimit, u64)>) -> Response {
    let mut r = product_error(product, 429, "Too many requests: rate limit exceeded");
    set_header(r.headers_mut(), "retry-after", &retry.to_string());
    if let Some((rl, remaining)) = rl {
        add_rl_headers(r.headers_mut(), rl, remaining, retry);
    }
    r
}

/// Checks the per-user write failure list; returns the product error to answer with.
pub(crate) fn user_write_fault(shared: &Shared, name: &str) -> Option<Response> {
    let f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
    f.config
        .fail_users
        .get(&name.to_lowercase())
        .map(|(status, msg)| product_error(shared.product, *status, msg))
}

/// 404 for paths no route matches, in the product's error shape.
pub(crate) async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = product_error(shared.product, 404, "Not Found").into_response();
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}
