//! A thin authenticated Graph client: bearer token, bounded concurrency, the shared retry
//! policy (`crate::http::send`: 429 + `Retry-After`, 5xx back-off), one token refresh on 401.

use super::auth::{AccessToken, TokenError, TokenProvider};
use super::config::GraphSourceConfig;
use super::errors::{GraphErrorBody, explain_graph_error_for};
use crate::http::{self, HttpCounters, Idempotency, RetryPolicy};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use usersync_core::ports::{ConnectorError, ErrorKind};

/// A failed Graph call.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No token.
    Token(TokenError),
    /// Unreachable, or still throttled after the retry budget.
    Transport(ConnectorError),
    /// Graph answered with an error status.
    Status {
        /// HTTP status.
        status: u16,
        /// Graph error code (may be empty).
        code: String,
        /// Graph error message.
        message: String,
        /// Which call.
        what: String,
    },
}

impl CallError {
    /// HTTP status, if Graph answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph error code, if any.
    pub fn code(&self) -> &str {
        match self {
            CallError::Status { code, .. } => code,
            _ => "",
        }
    }

    /// True for the documented "delta state gone" answers: `410 Gone`, or a 4xx with
    /// `syncStateNotFound` / `resyncRequired` (<https://learn.microsoft.com/graph/delta-query-overview>,
    /// <https://learn.microsoft.com/graph/errors>).
    pub fn is_delta_reset(&self) -> bool {
        match self {
            CallError::Status { status, code, .. } => {
                *status == 410
                    || ((400..500).contains(status)
                        && matches!(
                            code.to_ascii_lowercase().as_str(),
                            "syncstatenotfound" | "resyncrequired"
                        ))
            }
            _ => false,
        }
    }

    /// As a connector error with an explanation.
    pub fn into_connector(self) -> ConnectorError {
        match self {
            CallError::Token(t) => t.into_connector(),
            CallError::Transport(e) => e,
            CallError::Status {
                status,
                code,
                message,
                what,
            } => {
                let kind = match status {
                    401 => ErrorKind::Auth,
                    403 => ErrorKind::Forbidden,
                    404 => ErrorKind::NotFound,
                    400 | 422 => ErrorKind::Invalid,
                    _ => ErrorKind::Other,
                };
                let (meaning, fix) = explain_graph_error_for(&code, &what);
                let mut e = ConnectorError::new(
                    kind,
                    format!(
                        "{what}: HTTP {status} {}: {} — {meaning} Fix: {fix}",
                        if code.is_empty() {
                            "(no error code)"
                        } else {
                            code.as_str()
                        },
                        if message.is_empty() {
                            "(empty body)"
                        } else {
                            message.as_str()
                        }
                    ),
                );
                e.status = Some(status);
                e
            }
        }
    }
}

/// A successful (2xx) or otherwise final response.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Authenticated Graph client.
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    /// Token source.
    pub tokens: TokenProvider,
    policy: RetryPolicy,
    /// Counters of all requests (token requests included).
    pub counters: Arc<HttpCounters>,
    sem: Semaphore,
}

impl GraphClient {
    /// Builds the client from the configuration.
    pub fn new(cfg: &GraphSourceConfig) -> Result<Self, ConnectorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.request_timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("usersync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConnectorError::new(ErrorKind::Other, format!("building the HTTP client: {e}"))
            })?;
        let counters = Arc::new(HttpCounters::default());
        let tokens = TokenProvider::new(cfg, http.clone(), counters.clone());
        Ok(Self {
            http,
            base: cfg.cloud.graph_url(),
            tokens,
            policy: cfg.retry.clone(),
            counters,
            sem: Semaphore::new(cfg.max_concurrency.max(1)),
        })
    }

    /// Graph base URL (with `/v1.0`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that an absolute link (a nextLink or deltaLink) is on the configured Graph
    /// origin (scheme, host and port): the bearer token must never go anywhere else.
    /// `Err` names the link's origin (never the token).
    pub fn check_origin(&self, link: &str) -> Result<(), String> {
        let want = origin(&self.base).unwrap_or_default();
        match origin(link) {
            Some(o) if o == want => Ok(()),
            Some(o) => Err(format!(
                "the link points to {o}, not the configured Graph endpoint {want}"
            )),
            None => Err("the link is not an absolute http(s) URL".into()),
        }
    }

    /// The absolute URL a path or link is sent to, normalised the way it goes on the wire (so
    /// two spellings of one link compare equal).
    pub fn absolute(&self, path_or_url: &str) -> String {
        let full = if path_or_url.contains("://") {
            path_or_url.to_string()
        } else {
            format!("{}/{}", self.base, path_or_url.trim_start_matches('/'))
        };
        reqwest::Url::parse(&full).map(String::from).unwrap_or(full)
    }

    fn url(&self, path_or_url: &str) -> Result<String, CallError> {
        if path_or_url.contains("://") {
            // Links are followed verbatim (graph/paging), but only to the Graph origin.
            self.check_origin(path_or_url).map_err(|m| {
                CallError::Transport(ConnectorError::new(
                    ErrorKind::Invalid,
                    format!("refusing to send the Graph access token: {m}"),
                ))
            })?;
            Ok(path_or_url.to_string())
        } else {
            Ok(format!(
                "{}/{}",
                self.base,
                path_or_url.trim_start_matches('/')
            ))
        }
    }

    /// Sends a request; returns the final response whatever its status, except that a 401 is
    /// retried once with a fresh token.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<Reply, CallError> {
        let url = self.url(path_or_url)?;
        let _permit = self.sem.acquire().await.expect("semaphore never closed");
        let mut refreshed = false;
        loop {
            let token: AccessToken = self.tokens.token().await.map_err(CallError::Token)?;
            let idem = if method == Method::GET {
                Idempotency::Idempotent
            } else {
                Idempotency::NonIdempotent
            };
            let resp = http::send(
                || {
                    let mut rb = self
                        .http
                        .request(method.clone(), &url)
                        .bearer_auth(token.secret.expose_secret());
                    for (k, v) in headers {
                        rb = rb.header(*k, *v);
                    }
                    if let Some(b) = body {
                        rb = rb.json(b);
                    }
                    rb
                },
                &self.policy,
                &self.counters,
                idem,
                what,
            )
            .await
            .map_err(CallError::Transport)?;
            let status = resp.status().as_u16();
            let resp_headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| {
                CallError::Transport(ConnectorError::new(
                    ErrorKind::Unreachable,
                    format!("{what}: reading the response: {}", http::describe(&e)),
                ))
            })?;
            if status == 401 && !refreshed {
                // The token may have been revoked or expired early: fetch a new one, retry once.
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return Ok(Reply {
                status,
                headers: resp_headers,
                body: bytes.to_vec(),
            });
        }
    }

    /// GET returning parsed JSON for 2xx, or [`CallError::Status`].
    pub async fn get_json(
        &self,
        path_or_url: &str,
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<Value, CallError> {
        let reply = self
            .send(Method::GET, path_or_url, None, headers, what)
            .await?;
        json_or_error(reply, what)
    }
}

/// `scheme://host:port` of an absolute http(s) URL (known default ports filled in).
fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

/// Parses a 2xx JSON body, or turns an error status into [`CallError::Status`].
pub fn json_or_error(reply: Reply, what: &str) -> Result<Value, CallError> {
    if (200..300).contains(&reply.status) {
        serde_json::from_slice(&reply.body).map_err(|e| CallError::Status {
            status: reply.status,
            code: "UnexpectedBody".into(),
            message: format!("the response is not the JSON expected: {e}"),
            what: what.to_string(),
        })
    } else {
        let text = String::from_utf8_lossy(&reply.body);
        let err = GraphErrorBody::parse(&text);
        Err(CallError::Status {
            status: reply.status,
            code: err.code,
            message: err.message,
            what: what.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> CallError {
        json_or_error(
            Reply {
                status,
                headers: Default::default(),
                body: body.as_bytes().to_vec(),
            },
            "GET x",
        )
        .unwrap_err()
    }

    #[test]
    fn delta_reset_answers() {
        // Captured 410 (graph docs issue #2350) and the codes of graph/errors.
        let gone = err(
            410,
            r#"{"error":{"code":"SyncStateNotFound","message":"The sync state generation is not found; generation=149;[highest=157][157][155][156].","innerError":{"request-id":"r","date":"d"}}}"#,
        );
        assert!(gone.is_delta_reset());
        assert!(
            err(
                400,
                r#"{"error":{"code":"syncStateNotFound","message":"expired"}}"#
            )
            .is_delta_reset()
        );
        assert!(
            err(
                400,
                r#"{"error":{"code":"resyncRequired","message":"reset"}}"#
            )
            .is_delta_reset()
        );
        let denied = err(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
        );
        assert!(!denied.is_delta_reset());
        let e = denied.into_connector();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(e.message.contains("Grant admin consent"));
        assert_eq!(err(500, "<html>").code(), "");
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://graph.microsoft.com/v1.0/users?$skiptoken=x").as_deref(),
            Some("https://graph.microsoft.com:443")
        );
        assert_eq!(
            origin("HTTP://127.0.0.1:8080/v1.0").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("ftp://graph.microsoft.com/"), None);
        assert_eq!(origin("/v1.0/users"), None);
        let mut cfg = super::super::config::GraphSourceConfig::new(
            "t",
            "c",
            super::super::config::GraphCredential::Secret("s".to_string().into()),
        );
        cfg.cloud = super::super::config::GraphCloud::Global;
        let c = GraphClient::new(&cfg).unwrap();
        assert!(
            c.check_origin("https://graph.microsoft.com:443/v1.0/users/delta?$deltatoken=a")
                .is_ok()
        );
        for bad in [
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://user@evil.example/v1.0",
        ] {
            let e = c.check_origin(bad).unwrap_err();
            assert!(e.contains("not the configured"), "{bad}: {e}");
        }
    }
}
