//! The HTTP client shared by the four Atlassian targets: one `reqwest` client per target with
//! the configured CA bundle and timeout, authentication, bounded concurrency, the shared retry
//! and throttling policy (`crate::http::send`), and translation of each product's error body into a
//! [`ConnectorError`] with the product's own message and the right [`ErrorKind`].

use super::{AtlassianAuth, AtlassianTargetConfig, Product};
use crate::http::{self, HttpCounters, Idempotency, RetryPolicy};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::Semaphore;
use usersync_core::ports::{ConnectorError, ErrorKind};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (a username or group name in the path, e.g. Confluence's
/// `/rest/api/admin/user/{username}`).
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The per-target client.
pub(crate) struct Client {
    pub(crate) product: Product,
    http: reqwest::Client,
    base: String,
    auth: AtlassianAuth,
    retry: RetryPolicy,
    pub(crate) counters: Arc<HttpCounters>,
    permits: Arc<Semaphore>,
    pub(crate) max_concurrency: usize,
}

impl Client {
    /// Builds the client; fails on configuration errors only.
    pub(crate) fn new(cfg: &AtlassianTargetConfig) -> Result<Self, ConnectorError> {
        if matches!(cfg.auth, AtlassianAuth::CrowdApp { .. }) != (cfg.product == Product::Crowd) {
            return Err(ConnectorError::new(
                ErrorKind::Invalid,
                if cfg.product == Product::Crowd {
                    "Crowd's usermanagement REST API authenticates applications, not users: configure auth kind \
                     `crowd_app` with the application name and password (Crowd > Applications)"
                        .to_string()
                } else {
                    format!(
                        "{} does not accept Crowd application credentials: use `basic` or `bearer` (personal access token) auth",
                        cfg.product.display_name()
                    )
                },
            ));
        }
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| {
            ConnectorError::new(
                ErrorKind::Invalid,
                format!("base_url {base:?} is not a valid URL ({e}); use e.g. https://host/jira including the context path"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConnectorError::new(
                ErrorKind::Invalid,
                format!("base_url {base:?} must start with https:// (or http://)"),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("usersync/", env!("CARGO_PKG_VERSION")))
            // Atlassian answers some writes with redirects to login pages; never follow them
            // with credentials to another place.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Invalid,
                    format!("cannot read ca_bundle {}: {e}", path.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Invalid,
                    format!(
                        "ca_bundle {} is not a PEM certificate bundle: {e}",
                        path.display()
                    ),
                )
            })?;
            if certs.is_empty() {
                return Err(ConnectorError::new(
                    ErrorKind::Invalid,
                    format!("ca_bundle {} contains no PEM certificate", path.display()),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            ConnectorError::new(
                ErrorKind::Invalid,
                format!("cannot build the HTTP client: {}", http::describe(&e)),
            )
        })?;
        let max_concurrency = cfg.max_concurrency.max(1);
        Ok(Self {
            product: cfg.product,
            http,
            base,
            auth: cfg.auth.clone(),
            retry: cfg.retry.clone(),
            counters: Arc::new(HttpCounters::default()),
            permits: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
        })
    }

    /// The base URL (with context path, no trailing slash).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// A request to `base + path` with authentication and `Accept: application/json`.
    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.auth {
            AtlassianAuth::Basic { username, password } => {
                rb.basic_auth(username, Some(password.expose_secret()))
            }
            AtlassianAuth::CrowdApp { name, password } => {
                rb.basic_auth(name, Some(password.expose_secret()))
            }
            AtlassianAuth::Bearer { token } => rb.bearer_auth(token.expose_secret()),
        }
    }

    /// A request without credentials (reachability probe).
    pub(crate) fn req_anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends with the retry policy, holding one of the target's concurrency permits per attempt
    /// sequence. Returns whatever status the server finally answered.
    pub(crate) async fn send(
        &self,
        what: &str,
        idempotency: Idempotency,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ConnectorError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ConnectorError::new(ErrorKind::Other, "client closed"))?;
        http::send(build, &self.retry, &self.counters, idempotency, what).await
    }

    /// Sends and requires one of the `ok` statuses; any other status becomes a
    /// [`ConnectorError`] carrying the product's message.
    pub(crate) async fn call(
        &self,
        what: &str,
        idempotency: Idempotency,
        ok: &[u16],
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ConnectorError> {
        let resp = self.send(what, idempotency, build).await?;
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            // The products answer with JSON or nothing; an HTML page with a success status is a
            // proxy's or SSO gateway's login page, and the request never reached the product.
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if content_type.contains("html") {
                let mut e = ConnectorError::new(
                    ErrorKind::Unreachable,
                    format!(
                        "{what}: HTTP {status} with a text/html page instead of {}'s answer — \
                         a proxy or single sign-on gateway in front of it answered (a login page?), so nothing was applied; \
                         point base_url at the product itself or let the proxy pass REST calls with their credentials",
                        self.product.display_name()
                    ),
                );
                e.status = Some(status);
                return Err(e);
            }
            return Ok(resp);
        }
        Err(self.error_from(resp, what).await)
    }

    /// GET returning JSON (status 200).
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, ConnectorError> {
        let resp = self
            .call(what, Idempotency::Idempotent, &[200], build)
            .await?;
        json_body(resp, what).await
    }

    /// GET returning JSON (status 200), or `None` when the product answers 404 (the object
    /// does not exist): single-object reads.
    pub(crate) async fn get_json_opt<T: DeserializeOwned>(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Option<T>, ConnectorError> {
        match self.get_json(what, build).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            r => r.map(Some),
        }
    }

    /// Turns an error response into a [`ConnectorError`].
    pub(crate) async fn error_from(&self, resp: Response, what: &str) -> ConnectorError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        error_for(self.product, status, &self.redact(&body), what)
    }

    /// `text` without this target's credentials (see [`http::redact`]).
    pub(crate) fn redact(&self, text: &str) -> String {
        use base64::Engine as _;
        let (user, secret) = match &self.auth {
            AtlassianAuth::Basic { username, password } => (Some(username), password),
            AtlassianAuth::CrowdApp { name, password } => (Some(name), password),
            AtlassianAuth::Bearer { token } => (None, token),
        };
        let secret = secret.expose_secret();
        let encoded =
            user.map(|u| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{secret}")));
        let mut secrets = vec![secret];
        if let Some(e) = &encoded {
            secrets.push(e.as_str());
        }
        http::redact(text, &secrets)
    }
}

/// Reads a JSON body, mapping a decoding failure to `ErrorKind::Other` with what was expected.
pub(crate) async fn json_body<T: DeserializeOwned>(
    resp: Response,
    what: &str,
) -> Result<T, ConnectorError> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| {
        ConnectorError::new(
            ErrorKind::Unreachable,
            format!(
                "{what}: reading the response failed: {}",
                http::describe(&e)
            ),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let mut err = ConnectorError::new(
            ErrorKind::Other,
            format!(
                "{what}: unexpected response (HTTP {status}, not the documented JSON: {e}); is base_url the product's URL including its context path?"
            ),
        );
        err.status = Some(status);
        err
    })
}

/// A product's error body, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductError {
    /// The product's own message(s), joined with `; `. Empty when the body had none.
    pub message: String,
    /// Crowd's `reason` (e.g. `USER_NOT_FOUND`) or Confluence's `reason`.
    pub reason: Option<String>,
    /// Bitbucket's `exceptionName`.
    pub exception: Option<String>,
}

/// Extracts the product's own message from an error body:
/// - Jira `ErrorCollection` `{"errorMessages":[…],"errors":{field:msg}}` (Jira REST docs),
/// - Confluence `RestError` `{"statusCode","data","message","reason"}` (Confluence OpenAPI),
/// - Bitbucket `RestErrors` `{"errors":[{"context","message","exceptionName"}]}` (Bitbucket
///   OpenAPI),
/// - Crowd `ErrorEntity` `{"reason","message"}` or its XML form `<error><reason/><message/></error>`
///   (Crowd REST docs), and Crowd's Tomcat HTML 403 page for a refused client address.
///
/// Anything else (HTML error pages, plain text) is reduced to its text.
pub fn parse_error_body(product: Product, body: &str) -> ProductError {
    let trimmed = body.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed) {
        let mut out = ProductError::default();
        let mut parts: Vec<String> = Vec::new();
        if let Some(list) = v.get("errorMessages").and_then(|m| m.as_array()) {
            parts.extend(list.iter().filter_map(|m| m.as_str()).map(str::to_string));
        }
        match v.get("errors") {
            // Jira: field → message.
            Some(serde_json::Value::Object(map)) => {
                for (field, msg) in map {
                    if let Some(m) = msg.as_str() {
                        parts.push(format!("{field}: {m}"));
                    }
                }
            }
            // Bitbucket: list of error objects.
            Some(serde_json::Value::Array(list)) => {
                for e in list {
                    if let Some(m) = e.get("message").and_then(|m| m.as_str()) {
                        parts.push(m.to_string());
                    }
                    if out.exception.is_none() {
                        out.exception = e
                            .get("exceptionName")
                            .and_then(|x| x.as_str())
                            .map(str::to_string);
                    }
                }
            }
            _ => {}
        }
        if let Some(m) = v.get("message").and_then(|m| m.as_str())
            && !m.is_empty()
        {
            parts.push(m.to_string());
        }
        // Confluence puts validation details into data.errors[].message.translation.
        if let Some(list) = v.pointer("/data/errors").and_then(|e| e.as_array()) {
            for e in list {
                let m = e
                    .pointer("/message/translation")
                    .or_else(|| e.get("message"))
                    .and_then(|m| m.as_str());
                if let Some(m) = m
                    && !parts.iter().any(|p| p == m)
                {
                    parts.push(m.to_string());
                }
            }
        }
        out.reason = v.get("reason").and_then(|r| r.as_str()).map(str::to_string);
        if parts.is_empty()
            && let Some(r) = &out.reason
        {
            parts.push(r.clone());
        }
        out.message = parts.join("; ");
        return out;
    }
    if trimmed.starts_with('<') {
        // Crowd's XML ErrorEntity.
        if product == Product::Crowd
            && let Some(message) = xml_element(trimmed, "message")
        {
            return ProductError {
                message,
                reason: xml_element(trimmed, "reason"),
                exception: None,
            };
        }
        return ProductError {
            message: truncate(&html_text(trimmed), 300),
            reason: None,
            exception: None,
        };
    }
    ProductError {
        message: truncate(trimmed, 300),
        reason: None,
        exception: None,
    }
}

/// The text of the first `<name>` element of an XML document, entities decoded (quick-xml);
/// `None` when the element is missing or the document is not well-formed.
fn xml_element(xml: &str, name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.name().0 == name => {
                let raw = reader.read_text(e.to_end().name()).ok()?;
                return quick_xml::escape::unescape(&raw)
                    .ok()
                    .map(|t| t.into_owned());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Decodes XML/HTML character references; text with an entity XML does not define (HTML's
/// `&nbsp;`) is kept as it is.
fn xml_unescape(s: &str) -> String {
    match quick_xml::escape::unescape(s) {
        Ok(t) => t.into_owned(),
        Err(_) => s.to_string(),
    }
}

/// The visible text of an HTML page (tags, scripts and styles removed, whitespace collapsed).
fn html_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            for skip in ["<script", "<style", "<head"] {
                if lower[i..].starts_with(skip) {
                    let closing = format!("</{}", &skip[1..]);
                    if let Some(end) = lower[i..].find(&closing) {
                        i += end;
                    }
                }
            }
            match html[i..].find('>') {
                Some(end) => i += end + 1,
                None => break,
            }
            out.push(' ');
        } else {
            let next = html[i..].find('<').map(|n| i + n).unwrap_or(html.len());
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    xml_unescape(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

fn mentions_licence(msg: &str) -> bool {
    let m = msg.to_lowercase();
    (m.contains("licen") || m.contains("seat")) && !m.contains("licensed_user permission to call")
}

fn mentions_duplicate(msg: &str) -> bool {
    let m = msg.to_lowercase();
    m.contains("already exist")
        || m.contains("already a member")
        || m.contains("already in group")
        || m.contains("duplicate")
}

fn mentions_missing(msg: &str) -> bool {
    let m = msg.to_lowercase();
    m.contains("does not exist")
        || m.contains("not found")
        || m.contains("doesn't exist")
        || m.contains("no such")
}

/// Classifies an error response. Mapping (from the products' documented statuses):
/// 401 → Auth (Bitbucket answers 401 also for an authenticated caller without the permission,
/// recognisable by `AuthorisationException`, → Forbidden); 403 → Forbidden, except a licence
/// limit (Bitbucket create/add answers 403 with licence text) → LicenceFull; Confluence 402 →
/// LicenceFull; 404 → NotFound; 409 → Conflict; 400 → Invalid, or Conflict / NotFound when the
/// product says the item already exists / does not exist (Jira answers 400 for both; Crowd's
/// `reason` says which).
pub fn classify(product: Product, status: u16, err: &ProductError) -> ErrorKind {
    let reason = err.reason.as_deref().unwrap_or("");
    match status {
        401 => {
            if product == Product::Bitbucket
                && err
                    .exception
                    .as_deref()
                    .is_some_and(|e| e.ends_with("AuthorisationException"))
            {
                ErrorKind::Forbidden
            } else {
                ErrorKind::Auth
            }
        }
        402 => ErrorKind::LicenceFull,
        403 => {
            if mentions_licence(&err.message) {
                ErrorKind::LicenceFull
            } else {
                ErrorKind::Forbidden
            }
        }
        404 | 410 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 | 422 => match reason {
            "USER_NOT_FOUND" | "GROUP_NOT_FOUND" | "MEMBERSHIP_NOT_FOUND" => ErrorKind::NotFound,
            "MEMBERSHIP_ALREADY_EXISTS" => ErrorKind::Conflict,
            _ if mentions_duplicate(&err.message) => ErrorKind::Conflict,
            _ if mentions_licence(&err.message) && err.message.to_lowercase().contains("limit") => {
                ErrorKind::LicenceFull
            }
            _ if mentions_missing(&err.message) => ErrorKind::NotFound,
            _ => ErrorKind::Invalid,
        },
        405 | 501 => ErrorKind::Unsupported,
        429 => ErrorKind::Throttled,
        _ => {
            if reason == "MEMBERSHIP_ALREADY_EXISTS" || mentions_duplicate(&err.message) {
                // Crowd answered duplicates with 500 OPERATION_FAILED before CWD-4819.
                ErrorKind::Conflict
            } else {
                ErrorKind::Other
            }
        }
    }
}

/// Builds the [`ConnectorError`] for an error response: `"<what>: <product message> (HTTP n)"`
/// plus the fix for systemic kinds.
pub fn error_for(product: Product, status: u16, body: &str, what: &str) -> ConnectorError {
    let body = http::redact(body, &[]);
    let parsed = parse_error_body(product, &body);
    let kind = classify(product, status, &parsed);
    let shown = if parsed.message.is_empty() {
        "no error message".to_string()
    } else {
        parsed.message.clone()
    };
    let mut message = format!(
        "{what}: {} said: {shown} (HTTP {status})",
        product.display_name()
    );
    match kind {
        ErrorKind::Auth => message.push_str(match product {
            Product::Crowd => {
                " — the application name or password is wrong; check them in Crowd > Applications (or Jira's user server settings)"
            }
            _ => " — the credentials were rejected; check the username/password or that the personal access token is valid and not expired",
        }),
        ErrorKind::Forbidden => message.push_str(match product {
            Product::Jira => " — the account needs the Jira Administrators (or System Administrators) global permission",
            Product::Confluence => " — the account needs Confluence Administrator (or System Administrator) permission",
            Product::Bitbucket => " — the account needs the Bitbucket ADMIN (or SYS_ADMIN) global permission",
            Product::Crowd => {
                " — allow this host's address in the Crowd application's remote addresses and grant the application the directory permissions (add/modify/remove users, groups and memberships)"
            }
        }),
        ErrorKind::LicenceFull => message.push_str(" — the product licence has no free seats; free or buy seats"),
        _ => {}
    }
    let mut e = ConnectorError::new(kind, message);
    e.status = Some(status);
    e
}

/// A random strong password for APIs that require one at creation (Confluence, Bitbucket,
/// Crowd). Users sign in through SSO; nobody ever sees it. 40 characters from upper, lower,
/// digits and symbols (at least one of each).
pub(crate) fn random_password() -> SecretString {
    use rand::Rng;
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%*+-=?@^_";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    while chars.len() < 40 {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    // Shuffle so the class-guaranteeing characters are not always first.
    for i in (1..chars.len()).rev() {
        let j = rng.random_range(0..=i);
        chars.swap(i, j);
    }
    SecretString::from(String::from_utf8(chars).expect("ASCII"))
}

/// Splits a display name into Crowd's first and last name (last word is the last name).
pub(crate) fn split_name(display: &str) -> (String, String) {
    let d = display.trim();
    match d.rsplit_once(' ') {
        Some((first, last)) => (first.trim().to_string(), last.to_string()),
        None => (String::new(), d.to_string()),
    }
}

/// Fails an operation the product does not support.
pub(crate) fn unsupported(product: Product, what: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Unsupported,
        format!("{} has no REST API to {what}", product.display_name()),
    )
}

/// Runs `f` for every item with at most `limit` in flight and waits for all of them. All items
/// are attempted; if any failed, the error names each failure (first five) and carries the
/// first failure's kind and status.
pub(crate) async fn run_all(
    futs: Vec<futures::future::BoxFuture<'_, Result<(), ConnectorError>>>,
    limit: usize,
    what: &str,
) -> Result<(), ConnectorError> {
    use futures::StreamExt;
    let total = futs.len();
    let errors: Vec<ConnectorError> = futures::stream::iter(futs)
        .buffer_unordered(limit.max(1))
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().expect("one")),
        n => {
            let first = &errors[0];
            let shown: Vec<&str> = errors.iter().take(5).map(|e| e.message.as_str()).collect();
            let mut e = ConnectorError::new(
                first.kind,
                format!(
                    "{what}: {n} of {total} requests failed: {}",
                    shown.join(" | ")
                ),
            );
            e.status = first.status;
            Err(e)
        }
    }
}

/// An error for a response that does not have the documented shape.
pub(crate) fn unexpected(what: &str, detail: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Other,
        format!("{what}: unexpected response: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_strong_and_random() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.expose_secret().len(), 40);
        assert_ne!(a.expose_secret(), b.expose_secret());
        let p = a.expose_secret();
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert!(!format!("{a:?}").contains(p));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("jane.doe@example.com"), "jane.doe%40example.com");
    }

    #[test]
    fn html_is_reduced_to_text() {
        let t = html_text(
            "<html><head><title>x</title></head><body><h1>HTTP Status 403</h1><p>Client with address &quot;1.2.3.4&quot; is forbidden</p></body></html>",
        );
        assert_eq!(
            t,
            "HTTP Status 403 Client with address \"1.2.3.4\" is forbidden"
        );
    }

    #[test]
    fn crowd_xml_errors_are_parsed_not_searched() {
        // Named and numeric character references after an XML declaration; the hand-written
        // substring search it replaces left numeric references (`&#233;`) undecoded.
        let p = parse_error_body(
            Product::Crowd,
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><error lang="en"><reason>USER_NOT_FOUND</reason><message>User &lt;Ren&#233;&amp;b&gt; does not exist (&amp;lt;)</message></error>"#,
        );
        assert_eq!(p.message, "User <René&b> does not exist (&lt;)");
        assert_eq!(p.reason.as_deref(), Some("USER_NOT_FOUND"));
        // Not well-formed: reduced to text rather than half-parsed.
        let p = parse_error_body(Product::Crowd, "<error><message>cut off");
        assert_eq!(p.reason, None);
        assert_eq!(p.message, "cut off");
    }

    #[test]
    fn names_split() {
        assert_eq!(
            split_name("Jane van Doe"),
            ("Jane van".into(), "Doe".into())
        );
        assert_eq!(split_name("Cher"), ("".into(), "Cher".into()));
    }
}
