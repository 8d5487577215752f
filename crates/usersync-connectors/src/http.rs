//! The shared outbound HTTP policy: one place that decides when to wait and retry.
//!
//! - `429` and `503` carry `Retry-After` (seconds, possibly decimal as Graph sends `2.128`, or an
//!   HTTP date); we sleep exactly that long (capped), because Graph and Jira both say a client
//!   that retries early is throttled longer.
//! - `502`/`503`/`504` and connection errors back off exponentially with jitter.
//! - Retries are bounded three ways, so a run can't hang: attempts per request
//!   ([`RetryPolicy::max_attempts`]), waiting per request ([`RetryPolicy::max_total_wait`] for
//!   `Retry-After` waits, the smaller [`RetryPolicy::max_error_wait`] for back-off after
//!   5xx/transport errors, which a gateway without `Retry-After` would otherwise stretch to
//!   minutes), and waiting per connector, i.e. per run ([`RetryPolicy::max_run_wait`], counted in
//!   [`HttpCounters`]). When a budget is spent the error is `Throttled`/`Unreachable`, which the
//!   engine treats as systemic.
//! - Non-idempotent requests (POSTs that create) are re-sent only when the server certainly did
//!   not act: it answered 429 or 503 (refused), or the connection could not be made at all.
//!   A 502/504, a reset or a timeout after the request was sent is ambiguous — the server may
//!   have applied it — so the response is returned as it is and the next run's plan finds out.
//! - TLS certificate failures are never retried: they do not clear by waiting.

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
    /// Total time one request may spend waiting across retries (any cause, `Retry-After`
    /// included).
    pub max_total_wait: Duration,
    /// Total time one request may spend backing off after 502/503/504 without `Retry-After`
    /// and transport errors (a dead gateway is not worth minutes per page).
    pub max_error_wait: Duration,
    /// Total time all requests of one connector (one run) may spend waiting.
    pub max_run_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(120),
            max_total_wait: Duration::from_secs(600),
            max_error_wait: Duration::from_secs(60),
            max_run_wait: Duration::from_secs(1800),
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
            max_error_wait: Duration::from_secs(10),
            max_run_wait: Duration::from_secs(30),
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
    /// Milliseconds spent waiting before retries, all requests together (the per-run budget).
    pub waited_ms: AtomicU64,
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
    /// Time spent waiting before retries so far.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }
}

/// Whether a request may be re-sent after an ambiguous failure (timeout, connection reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, DELETE: safe to repeat.
    Idempotent,
    /// POST that creates something: only re-sent when the server refused it (429/503) or the
    /// connection could not be made; never after 502/504, a reset or a timeout.
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
    let mut error_waited = Duration::ZERO;
    let mut attempt: u32 = 0;
    // Whether one more wait of `d` fits every budget.
    let fits = |waited: Duration, d: Duration| {
        waited + d <= policy.max_total_wait && counters.waited() + d <= policy.max_run_wait
    };
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
                        let d = retry_after
                            .unwrap_or_else(|| backoff(policy, attempt))
                            .min(policy.max_delay);
                        if attempt >= policy.max_attempts || !fits(waited, d) {
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
                        // 502/504: a gateway gave up waiting for the server, which may have
                        // acted; a non-idempotent request is not sent again.
                        if status != StatusCode::SERVICE_UNAVAILABLE
                            && idempotency == Idempotency::NonIdempotent
                        {
                            return Ok(resp);
                        }
                        let d = retry_after
                            .unwrap_or_else(|| backoff(policy, attempt))
                            .min(policy.max_delay);
                        // Only a wait the server asked for may use the long budget.
                        let error_ok =
                            retry_after.is_some() || error_waited + d <= policy.max_error_wait;
                        if attempt >= policy.max_attempts || !fits(waited, d) || !error_ok {
                            return Ok(resp);
                        }
                        if retry_after.is_none() {
                            error_waited += d;
                        }
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        d
                    }
                    _ => return Ok(resp),
                }
            }
            Err(err) => {
                let cert = is_certificate_error(&err);
                // A connect error means nothing reached the server; anything else (reset,
                // timeout, broken body) may have been processed.
                let can_retry =
                    !cert && (idempotency == Idempotency::Idempotent || err.is_connect());
                // Refused connections and failed DNS look-ups rarely clear within a run; a few
                // quick retries cover a restart, then the admin hears about it.
                let max_attempts = if err.is_connect() {
                    policy.max_attempts.min(CONNECT_ATTEMPTS)
                } else {
                    policy.max_attempts
                };
                let d = backoff(policy, attempt).min(policy.max_delay);
                if !can_retry
                    || attempt >= max_attempts
                    || !fits(waited, d)
                    || error_waited + d > policy.max_error_wait
                {
                    let hint = if cert {
                        certificate_hint(&err)
                    } else if !can_retry {
                        " — the request may or may not have been applied (it was not sent again); the next run checks"
                    } else {
                        " — check the URL, DNS, proxy and TLS settings"
                    };
                    let mut e = ConnectorError::new(
                        ErrorKind::Unreachable,
                        format!(
                            "{what}: {} (after {attempt} attempt{}){hint}",
                            describe(&err),
                            if attempt == 1 { "" } else { "s" }
                        ),
                    );
                    e.status = None;
                    return Err(e);
                }
                error_waited += d;
                counters.retried.fetch_add(1, Ordering::Relaxed);
                d
            }
        };
        tracing::debug!(
            what,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
        waited += delay;
        counters
            .waited_ms
            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Whether a transport error is a TLS certificate rejection (never worth retrying).
pub fn is_certificate_error(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(_)) = s.downcast_ref::<rustls::Error>() {
            return true;
        }
        // io::Error::source() skips the wrapped error itself, so look inside.
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && let Some(rustls::Error::InvalidCertificate(_)) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return true;
        }
        source = s.source();
    }
    describe(err).contains("invalid peer certificate")
}

/// The fix for a certificate rejection.
fn certificate_hint(err: &reqwest::Error) -> &'static str {
    if describe(err).contains("CaUsedAsEndEntity") {
        " — the server presents a CA certificate (basicConstraints CA:TRUE, what `openssl req -x509` makes by default) as its own certificate, which TLS clients refuse even when it is in ca_bundle. \
         Give the server a certificate with CA:FALSE, e.g. `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 825 -subj /CN=HOST -addext subjectAltName=DNS:HOST -addext basicConstraints=critical,CA:FALSE`, \
         or sign a server certificate with your internal CA and put that CA in ca_bundle"
    } else {
        " — the server's certificate is not trusted: put your internal CA's PEM certificate in ca_bundle, and check that the certificate names this host and has not expired (not retried)"
    }
}

/// `text` with every credential removed: each of `secrets` (the configured passwords and
/// tokens, and their Basic encodings), and whatever follows an HTTP auth scheme (`Bearer …`,
/// `Basic …`) or a `password=` / `client_secret=` / `access_token=` parameter. Error bodies
/// pass through this before they reach a message, a log or a stored report, because some
/// servers and proxies echo the request's `Authorization` header back.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    static PATTERNS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)\b(bearer|basic|negotiate|ntlm)(\s+)[A-Za-z0-9._~+/=-]{4,}|\b(password|passwd|client_secret|access_token|refresh_token|client_assertion)(["']?\s*[:=]\s*["']?)[^\s"'&,;<>]+"#,
        )
        .expect("valid regex")
    });
    let mut out = text.to_string();
    for s in secrets {
        // Very short values would redact ordinary words; a real credential is longer.
        if s.len() >= 4 {
            out = out.replace(s, "[redacted]");
        }
    }
    PATTERNS
        .replace_all(&out, |c: &regex::Captures<'_>| match (c.get(1), c.get(3)) {
            // "Basic authentication failed" is prose; a credential has a digit or a symbol,
            // or is long.
            (Some(_), _)
                if {
                    let token = &c[0][c[1].len() + c[2].len()..];
                    token.len() < 20 && token.chars().all(|ch| ch.is_ascii_alphabetic())
                } =>
            {
                c[0].to_string()
            }
            (Some(scheme), _) => format!("{}{}[redacted]", scheme.as_str(), &c[2]),
            (None, Some(key)) => format!("{}{}[redacted]", key.as_str(), &c[4]),
            _ => "[redacted]".to_string(),
        })
        .into_owned()
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
    fn credentials_are_redacted() {
        let r = redact(
            "echo: Authorization: Bearer abc.def-123 and basic YWRtaW46cHc= password=hunter22&x=1 mysecretvalue",
            &["mysecretvalue"],
        );
        assert_eq!(
            r,
            "echo: Authorization: Bearer [redacted] and basic [redacted] password=[redacted]&x=1 [redacted]"
        );
        assert_eq!(redact("Basic auth failed", &[]), "Basic auth failed");
    }

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
