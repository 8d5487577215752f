//! `POST /v1.0/$batch` (JSON batching).
//!
//! <https://learn.microsoft.com/graph/json-batching>: at most 20 requests, unique ids, relative
//! URLs, `dependsOn` (a failed dependency gives 424), outer 200 with per-item `status`,
//! `headers`, `body`; each item is throttled individually and a 429 item carries its own
//! `Retry-After` (<https://learn.microsoft.com/graph/throttling#throttling-and-batching>).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::odata::{Body, GraphError, GraphResponse, JSON_CT};

#[derive(Deserialize)]
struct BatchReq {
    requests: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// Handles a batch; returns the outer response and the largest injected item delay.
pub(crate) fn handle(ctx: &Ctx<'_>, body: &[u8]) -> (GraphResponse, u64) {
    let parsed: BatchReq = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(_) => {
            return (
                ctx.err(GraphError::bad_request("Invalid batch payload format.")),
                0,
            );
        }
    };
    if parsed.requests.len() > 20 {
        // Limit of 20 requests per batch.
        return (
            ctx.err(GraphError::bad_request(
                "Number of batch request steps exceeds the maximum of 20.",
            )),
            0,
        );
    }
    if parsed.requests.is_empty() {
        return (
            ctx.err(GraphError::bad_request("Invalid batch payload format.")),
            0,
        );
    }
    let mut seen = std::collections::HashSet::new();
    for it in &parsed.requests {
        if !seen.insert(it.id.to_ascii_lowercase()) {
            return (
                ctx.err(GraphError::bad_request(format!(
                    "Batch request contains duplicate request id '{}'.",
                    it.id
                ))),
                0,
            );
        }
    }
    for it in &parsed.requests {
        if let Some(d) = it
            .depends_on
            .iter()
            .find(|d| !seen.contains(&d.to_ascii_lowercase()))
        {
            return (
                ctx.err(GraphError::bad_request(format!(
                    "Request '{}' depends on unknown request '{d}'.",
                    it.id
                ))),
                0,
            );
        }
    }
    let mut status_of: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::new();
    let mut max_delay = 0;
    for it in &parsed.requests {
        ctx.sh.count("batch.item");
        let failed_dep = it.depends_on.iter().any(|d| {
            status_of
                .get(&d.to_ascii_lowercase())
                .is_none_or(|s| !(200..300).contains(s))
        });
        let resp = if failed_dep {
            ctx.err(GraphError::new(
                424,
                "FailedDependency",
                "A dependent request failed.",
            ))
        } else {
            let url = it.url.trim();
            let url = url.strip_prefix("/v1.0").unwrap_or(url);
            let rel = if url.starts_with('/') {
                url.to_string()
            } else {
                format!("/{url}")
            };
            if rel.contains("://") {
                ctx.err(GraphError::bad_request(
                    "Batch request URLs must be relative.",
                ))
            } else {
                let (path, query) = rel.split_once('?').unwrap_or((rel.as_str(), ""));
                let mut h = HeaderMap::new();
                for (k, v) in &it.headers {
                    if let (Ok(k), Ok(v)) =
                        (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
                    {
                        h.insert(k, v);
                    }
                }
                let (r, d) = super::routes::exec(ctx, &it.method, path, query, &h);
                max_delay = max_delay.max(d);
                r
            }
        };
        status_of.insert(it.id.to_ascii_lowercase(), resp.status);
        responses.push(item_json(&it.id, resp));
    }
    (
        GraphResponse::json(200, json!({"responses": responses})),
        max_delay,
    )
}

fn item_json(id: &str, r: GraphResponse) -> Value {
    let mut headers = Map::new();
    headers.insert("Cache-Control".into(), json!("no-cache"));
    let body = match r.body {
        Body::Json(v) => {
            headers.insert("Content-Type".into(), json!(JSON_CT));
            headers.insert("OData-Version".into(), json!("4.0"));
            v
        }
        Body::Bytes(b, ct) => {
            // Binary content is base64-encoded inside a JSON batch response.
            headers.insert("Content-Type".into(), json!(ct));
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Body::Text(t) => {
            headers.insert("Content-Type".into(), json!("text/plain"));
            Value::String(t)
        }
    };
    for (k, v) in r.headers {
        headers.insert(k, Value::String(v));
    }
    json!({"id": id, "status": r.status, "headers": headers, "body": body})
}
