//! The shared outbound HTTP policy: one place that decides when to wait and retry.
//!
//! - `429` and `503` carry `Retry-After` (seconds, possibly decimal as Graph sends `2.128`, or an
//!   HTTP date); we sleep exactly that long (capped), because Graph and Jira both say a client
//!   that retries early is throttled longer.
//! - `502`/`503`/`504` and connection errors back off exponentially with jitter.
//! - Retries are bounded by attempts and by total waiting time, so a run can't hang forever;
//!   when the budget is spent the error is `Throttled`/`Unreachable`, which the engine treats as
//!   systemic.
//! - Non-idempotent requests are retried only when the server answered 429/503 (the request was
//!   refused before it was processed), never after a timeout whose effect is unknown.

use reqwest::{RequestBuilder, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use usersync_core::ports::{ConnectorError, ErrorKind};

/// Attempts for a request whose connection could not be made at all (refused, DNS failure).
const CONNECT_ATTEMPTS: u32 = 4;

/// Retry settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Maximum attempts per request (first try included).
    pub max_attempts: u32,
    /// First back-off delay for 5xx/transport errors.
    pub base_delay: Duration,
    /// Largest single wait (caps absurd `Retry-After` values).
    pub max_delay: Duration,
    /// Total time one request may spend waiting across retries.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(120),
            max_total_wait: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The policy for a connection test, derived from this one: a test must answer in seconds,
    /// because an unreachable endpoint or a long throttling wait is itself the finding.
    pub fn for_connection_test(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.min(3),
            base_delay: self.base_delay.min(Duration::from_millis(500)),
            max_delay: Duration::from_secs(5),
            max_total_wait: Duration::from_secs(10),
        }
    }
}

/// Counters shared by all requests of one connector, for reports and benchmarks.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests sent (each retry counts).
    pub requests: AtomicU64,
    /// Responses that were 429.
    pub throttled: AtomicU64,
    /// Retries after 5xx or transport errors.
    pub retried: AtomicU64,
}

impl HttpCounters {
    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// 429 responses so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// Whether a request may be re-sent after an ambiguous failure (timeout, connection reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, DELETE: safe to repeat.
    Idempotent,
    /// POST that creates something: only retried when the server refused it (429/503).
    NonIdempotent,
}

/// Parses `Retry-After`: delta-seconds (integer or decimal) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    // HTTP-date (RFC 9110 §10.2.3), e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
    let ts = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let d = ts.duration_since(now);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base_delay.saturating_mul(1u32 << attempt.min(10));
    let capped = exp.min(policy.max_delay);
    // Full jitter in [50%, 100%] so parallel workers don't retry in lock-step.
    let factor = 0.5 + rand::random::<f64>() * 0.5;
    capped.mul_f64(factor)
}

/// Sends a request built by `build` (called again for each attempt), applying the retry policy.
/// Returns the final response, which may still be an error status other than 429/502/503/504;
/// the caller maps it. `what` names the call in error messages ("list users").
pub async fn send(
    build: impl Fn() -> RequestBuilder,
    policy: &RetryPolicy,
    counters: &Arc<HttpCounters>,
    idempotency: Idempotency,
    what: &str,
) -> Result<Response, ConnectorError> {
    let mut waited = Duration::ZERO;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = build().send().await;
        let delay = match result {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                match status {
                    StatusCode::TOO_MANY_REQUESTS => {
                        counters.throttled.fetch_add(1, Ordering::Relaxed);
                        let d = retry_after.unwrap_or_else(|| backoff(policy, attempt));
                        if attempt >= policy.max_attempts || waited + d > policy.max_total_wait {
                            let mut e = ConnectorError::new(
                                ErrorKind::Throttled,
                                format!(
                                    "{what}: still throttled (HTTP 429) after {attempt} attempts and {}s of waiting; \
                                     the service's rate limit is lower than the sync needs — run again later or lower the concurrency",
                                    waited.as_secs()
                                ),
                            );
                            e.status = Some(429);
                            return Err(e);
                        }
                        d
                    }
                    StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::GATEWAY_TIMEOUT => {
                        let d = retry_after.unwrap_or_else(|| backoff(policy, attempt));
                        if attempt >= policy.max_attempts || waited + d > policy.max_total_wait {
                            return Ok(resp);
                        }
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        d
                    }
                    _ => return Ok(resp),
                }
            }
            Err(err) => {
                let ambiguous = err.is_timeout() || err.is_body() || err.is_decode();
                let can_retry = idempotency == Idempotency::Idempotent || !ambiguous;
                // Refused connections and failed DNS look-ups rarely clear within a run; a few
                // quick retries cover a restart, then the admin hears about it.
                let max_attempts = if err.is_connect() {
                    policy.max_attempts.min(CONNECT_ATTEMPTS)
                } else {
                    policy.max_attempts
                };
                let d = backoff(policy, attempt);
                if !can_retry || attempt >= max_attempts || waited + d > policy.max_total_wait {
                    let mut e = ConnectorError::new(
                        ErrorKind::Unreachable,
                        format!(
                            "{what}: {} (after {attempt} attempts) — check the URL, DNS, proxy and TLS settings",
                            describe(&err)
                        ),
                    );
                    e.status = None;
                    return Err(e);
                }
                counters.retried.fetch_add(1, Ordering::Relaxed);
                d
            }
        };
        let d = delay.min(policy.max_delay);
        tracing::debug!(what, attempt, delay_ms = d.as_millis() as u64, "retrying");
        tokio::time::sleep(d).await;
        waited += d;
    }
}

/// A transport error in words, without the URL's query string (which may carry tokens).
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut msg = kind.to_string();
    if let Some(url) = err.url() {
        msg.push_str(&format!(
            " to {}://{}",
            url.scheme(),
            url.host_str().unwrap_or("?")
        ));
        if let Some(p) = url.port() {
            msg.push_str(&format!(":{p}"));
        }
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }
}
