//! Fault and throttling injection, resource-unit costs, and per-endpoint request counting.
//!
//! Throttling follows <https://learn.microsoft.com/graph/throttling> (429 body, `Retry-After`)
//! and <https://learn.microsoft.com/graph/throttling-limits> (identity and access service:
//! a token bucket of ResourceUnits per app+tenant per 10 s, per-request costs, and the
//! `x-ms-resource-unit`, `x-ms-throttle-limit-percentage`, `x-ms-throttle-scope` and
//! `x-ms-throttle-information` headers).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::generator::Rng;
use super::odata::GraphError;

/// A token bucket of ResourceUnits (Graph's identity budget, e.g. 3,500 RU per 10 s for a
/// small tenant: <https://learn.microsoft.com/graph/throttling-limits>).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleBudget {
    /// Bucket capacity and refill amount per window.
    pub resource_units: u32,
    /// Window length in seconds (Graph: 10).
    pub window_secs: f64,
    /// Count every request as 1 unit instead of its ResourceUnit cost (a plain
    /// "N requests per window" bucket).
    #[serde(default)]
    pub per_request: bool,
}

/// Fail one specific Graph request (1-based count of Graph requests including `$batch` items).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestFault {
    /// Which Graph request to fail (1-based).
    pub request: u64,
    /// HTTP status to answer with (429, 500, 503, 504, …).
    pub status: u16,
}

/// Fail requests whose path+query contains `contains` (e.g. a page's `$skiptoken=…`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UrlFault {
    /// Substring of path+query that selects the requests to fail.
    pub contains: String,
    /// HTTP status to answer with.
    pub status: u16,
    /// How many times to fail (0 = every time).
    #[serde(default)]
    pub times: u32,
}

/// How to spoil one page of a collection. A well-formed page has a `value` array and, per
/// <https://learn.microsoft.com/graph/paging>, either an `@odata.nextLink` to the next page of
/// the same service or (delta, last page) an `@odata.deltaLink`; a plain listing's last page has
/// neither. These break that contract the ways a proxy, a service bug or a hostile middlebox
/// could, so clients can be checked never to take a spoiled page as a complete read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PageFaultKind {
    /// `"value": null`.
    ValueNull,
    /// `"value": {}` (an object instead of an array).
    ValueObject,
    /// No `value` member at all.
    ValueMissing,
    /// Both `@odata.nextLink` and `@odata.deltaLink` on the page.
    BothLinks,
    /// `@odata.nextLink` names the page's own URL, every time that URL is requested (an
    /// endless self-loop).
    SelfLink,
    /// `@odata.nextLink` names the first page of this endpoint served since the faults were
    /// set, every time this page's URL is requested (a longer cycle).
    LinkToFirst,
    /// The page's link (`@odata.nextLink`, else `@odata.deltaLink`; a last page of a plain
    /// listing gets a nextLink) is moved to `origin` (`scheme://host:port`), keeping path and
    /// query.
    ForeignLink {
        /// The other origin, e.g. `http://127.0.0.1:9`.
        origin: String,
    },
}

/// Spoil page `page` of `endpoint` (see [`PageFaultKind`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageFault {
    /// Endpoint key as counted in [`RequestStats`] (`users.delta`, `groups.delta`, `users`,
    /// `groups`, `members`, `transitiveMembers`).
    pub endpoint: String,
    /// 1-based count of successful collection pages of `endpoint` served since the faults were
    /// set (with one read at a time, the page index within that read).
    pub page: u64,
    /// What to do to it.
    pub kind: PageFaultKind,
}

/// Fault injection settings. All random choices use a seeded RNG, so a sequential request
/// stream sees the same faults on every run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// RNG seed for the random faults.
    pub seed: u64,
    /// Probability (0..1) that a Graph request is answered with 429.
    pub throttle_rate: f64,
    /// `Retry-After` seconds on injected 429/503 responses.
    pub retry_after_secs: f64,
    /// Send `Retry-After` as a decimal (e.g. `1.5`) instead of an integer (docs show both).
    pub decimal_retry_after: bool,
    /// Identity ResourceUnit budget; `None` = unlimited.
    pub budget: Option<ThrottleBudget>,
    /// Probability of 503 Service Unavailable.
    pub unavailable_rate: f64,
    /// Probability of 504 Gateway Timeout.
    pub gateway_timeout_rate: f64,
    /// Specific request numbers to fail.
    pub fail_requests: Vec<RequestFault>,
    /// URL substrings to fail.
    pub fail_urls: Vec<UrlFault>,
    /// Probability that a request is delayed by `slow_ms`.
    pub slow_rate: f64,
    /// Delay in milliseconds for requests chosen by `slow_rate`.
    pub slow_ms: u64,
    /// Malformed or misdirected collection pages (each fires once, loops stay sticky).
    pub page_faults: Vec<PageFault>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            throttle_rate: 0.0,
            retry_after_secs: 1.0,
            decimal_retry_after: false,
            budget: None,
            unavailable_rate: 0.0,
            gateway_timeout_rate: 0.0,
            fail_requests: Vec::new(),
            fail_urls: Vec::new(),
            slow_rate: 0.0,
            slow_ms: 0,
            page_faults: Vec::new(),
        }
    }
}

/// Mutable fault engine state.
pub struct FaultState {
    pub cfg: FaultConfig,
    rng: Rng,
    /// Graph requests seen (for `fail_requests`).
    pub request_no: u64,
    url_hits: Vec<u32>,
    bucket: f64,
    last_refill: Instant,
    /// Successful collection pages served per endpoint key (for `page_faults`).
    pages: HashMap<String, u64>,
    /// First page URL served per endpoint key (for [`PageFaultKind::LinkToFirst`]).
    first_url: HashMap<String, String>,
    /// Page URL → the nextLink it keeps answering with (sticky loops).
    loops: HashMap<String, String>,
}

/// What the fault engine decided for one request.
pub struct Decision {
    pub error: Option<GraphError>,
    pub delay_ms: u64,
    /// `x-ms-throttle-limit-percentage` when above 80 % of the budget.
    pub limit_pct: Option<f64>,
}

impl FaultState {
    pub fn new(cfg: FaultConfig) -> Self {
        let bucket = cfg
            .budget
            .as_ref()
            .map(|b| b.resource_units as f64)
            .unwrap_or(0.0);
        FaultState {
            rng: Rng::new(cfg.seed),
            url_hits: vec![0; cfg.fail_urls.len()],
            cfg,
            request_no: 0,
            bucket,
            last_refill: Instant::now(),
            pages: HashMap::new(),
            first_url: HashMap::new(),
            loops: HashMap::new(),
        }
    }

    /// Applies any [`PageFault`] to a successful collection page of `endpoint` served for
    /// `url` (absolute, as the client addressed it). Returns true if the page was changed.
    pub fn spoil_page(&mut self, endpoint: &str, url: &str, body: &mut Value) -> bool {
        let Some(obj) = body.as_object_mut() else {
            return false;
        };
        if !obj.contains_key("value") {
            return false;
        }
        let n = self.pages.entry(endpoint.to_string()).or_insert(0);
        *n += 1;
        let n = *n;
        self.first_url
            .entry(endpoint.to_string())
            .or_insert_with(|| url.to_string());
        if let Some(link) = self.loops.get(url) {
            obj.remove("@odata.deltaLink");
            obj.insert("@odata.nextLink".into(), Value::String(link.clone()));
            return true;
        }
        let Some(f) = self
            .cfg
            .page_faults
            .iter()
            .find(|f| f.endpoint == endpoint && f.page == n)
        else {
            return false;
        };
        match &f.kind {
            PageFaultKind::ValueNull => {
                obj.insert("value".into(), Value::Null);
            }
            PageFaultKind::ValueObject => {
                obj.insert("value".into(), Value::Object(Default::default()));
            }
            PageFaultKind::ValueMissing => {
                obj.remove("value");
            }
            PageFaultKind::BothLinks => {
                let link = format!("{url}#spoiled");
                obj.entry("@odata.nextLink")
                    .or_insert_with(|| Value::String(link.clone()));
                obj.entry("@odata.deltaLink")
                    .or_insert_with(|| Value::String(link));
            }
            PageFaultKind::SelfLink | PageFaultKind::LinkToFirst => {
                let to = if f.kind == PageFaultKind::SelfLink {
                    url.to_string()
                } else {
                    self.first_url[endpoint].clone()
                };
                self.loops.insert(url.to_string(), to.clone());
                obj.remove("@odata.deltaLink");
                obj.insert("@odata.nextLink".into(), Value::String(to));
            }
            PageFaultKind::ForeignLink { origin } => {
                let key = if obj.contains_key("@odata.nextLink") {
                    "@odata.nextLink"
                } else if obj.contains_key("@odata.deltaLink") {
                    "@odata.deltaLink"
                } else {
                    "@odata.nextLink"
                };
                let link = obj
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or(url)
                    .to_string();
                // Keep the path and query: only scheme+host+port change.
                let rest = link
                    .split_once("://")
                    .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
                    .unwrap_or_default();
                obj.insert(
                    key.into(),
                    Value::String(format!("{}{rest}", origin.trim_end_matches('/'))),
                );
            }
        }
        true
    }

    fn retry_after(&self, secs: f64) -> String {
        if self.cfg.decimal_retry_after {
            format!("{:.3}", secs.max(0.001))
        } else {
            format!("{}", secs.ceil().max(1.0) as u64)
        }
    }

    fn fault(&self, status: u16, app: &str, tenant: &str, info: &str, wait: f64) -> GraphError {
        let mut e = match status {
            // 429 body: https://learn.microsoft.com/graph/throttling#sample-response
            429 => GraphError::new(429, "TooManyRequests", "Please retry again later."),
            // https://learn.microsoft.com/graph/errors (503 may carry Retry-After)
            503 => GraphError::new(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, the length of which may be specified in a Retry-After header.",
            ),
            504 => GraphError::new(
                504,
                "gatewayTimeout",
                "The server, while acting as a proxy, didn't receive a timely response from the upstream server it needed to access in attempting to complete the request.",
            ),
            500 => GraphError::new(
                500,
                "generalException",
                "An unspecified error has occurred.",
            ),
            502 => GraphError::new(502, "badGateway", "Bad gateway."),
            s => GraphError::new(s, "generalException", "Injected fault."),
        };
        if status == 429 || status == 503 {
            e.headers
                .push(("Retry-After".into(), self.retry_after(wait)));
        }
        if status == 429 {
            e.headers.push((
                "x-ms-throttle-scope".into(),
                format!("Tenant_Application/ReadWrite/{app}/{tenant}"),
            ));
            e.headers
                .push(("x-ms-throttle-information".into(), info.into()));
        }
        e
    }

    /// Decides the fate of one Graph request costing `cost` ResourceUnits.
    pub fn decide(&mut self, url: &str, cost: u32, app: &str, tenant: &str) -> Decision {
        self.request_no += 1;
        let mut d = Decision {
            error: None,
            delay_ms: 0,
            limit_pct: None,
        };
        if self.cfg.slow_rate > 0.0 && self.rng.unit() < self.cfg.slow_rate {
            d.delay_ms = self.cfg.slow_ms;
        }
        let ra = self.cfg.retry_after_secs;
        if let Some(f) = self
            .cfg
            .fail_requests
            .iter()
            .find(|f| f.request == self.request_no)
        {
            d.error = Some(self.fault(f.status, app, tenant, "CPULimitExceeded", ra));
            return d;
        }
        for (i, f) in self.cfg.fail_urls.iter().enumerate() {
            if url.contains(&f.contains) && (f.times == 0 || self.url_hits[i] < f.times) {
                self.url_hits[i] += 1;
                d.error = Some(self.fault(f.status, app, tenant, "CPULimitExceeded", ra));
                return d;
            }
        }
        if let Some(b) = self.cfg.budget.clone() {
            let cap = b.resource_units as f64;
            let rate = cap / b.window_secs.max(0.001);
            let now = Instant::now();
            self.bucket =
                (self.bucket + now.duration_since(self.last_refill).as_secs_f64() * rate).min(cap);
            self.last_refill = now;
            let cost = if b.per_request { 1 } else { cost };
            if self.bucket < cost as f64 {
                let wait = (cost as f64 - self.bucket) / rate;
                d.error = Some(self.fault(429, app, tenant, "ResourceUnitLimitExceeded", wait));
                return d;
            }
            self.bucket -= cost as f64;
            let used = 1.0 - self.bucket / cap;
            if used > 0.8 {
                d.limit_pct = Some((used * 10.0).round() / 10.0);
            }
        }
        let r = self.rng.unit();
        let (t, u, g) = (
            self.cfg.throttle_rate,
            self.cfg.unavailable_rate,
            self.cfg.gateway_timeout_rate,
        );
        if r < t {
            d.error = Some(self.fault(429, app, tenant, "CPULimitExceeded", ra));
        } else if r < t + u {
            d.error = Some(self.fault(503, app, tenant, "", ra));
        } else if r < t + u + g {
            d.error = Some(self.fault(504, app, tenant, "", ra));
        }
        d
    }
}

/// Snapshot of request counters, keyed by endpoint: `token`, `openid`, `users`, `users.get`,
/// `users.count`, `users.delta`, `groups`, `groups.get`, `groups.count`, `groups.delta`,
/// `members`, `transitiveMembers`, `memberOf`, `photo`, `photo.value`, `batch`, `batch.item`,
/// `applications`, `organization`, `unauthorized`, `unknown`, plus `throttled` (429s sent),
/// `faults` (other injected errors), `pageFaults` (pages spoiled by [`PageFault`]) and `requests` (all HTTP requests, see [`RequestStats::total`]).
/// `$batch` items are counted under their endpoint key as well as `batch.item`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestStats {
    /// Counter value per endpoint key.
    pub counts: BTreeMap<String, u64>,
}

impl RequestStats {
    /// Count for one key (0 if never seen).
    pub fn get(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }
    /// Total HTTP requests served (token, discovery and Graph top-level requests; a
    /// `$batch` counts once). Same as the `requests` key.
    pub fn total(&self) -> u64 {
        self.get("requests")
    }
}
