//! JSON batching: up to 20 GETs in one `POST /$batch`
//! (<https://learn.microsoft.com/graph/json-batching>). The outer response is 200 when the batch
//! parsed; each item carries its own status, and a throttled item its own `Retry-After`
//! (<https://learn.microsoft.com/graph/throttling>, "Throttling and batching"), so only failed
//! items are re-sent, after the longest wait.

use super::client::{CallError, GraphClient, json_or_error};
use crate::http::parse_retry_after;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// One batch's request indices and its answers by request id.
type ChunkAnswer = (Vec<usize>, BTreeMap<String, BatchItem>);

/// Graph's limit of requests per batch.
pub const MAX_BATCH: usize = 20;

/// Rounds of re-sending throttled/unavailable items.
const MAX_ROUNDS: usize = 8;

/// One item's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// Status of the inner request (0 if it never got an answer).
    pub status: u16,
    /// Headers, keys lower-cased.
    pub headers: BTreeMap<String, String>,
    /// JSON body (or `Null`).
    pub body: Value,
}

/// Parses a `$batch` response body into items by request id.
pub fn parse_batch_response(v: &Value) -> BTreeMap<String, BatchItem> {
    let mut out = BTreeMap::new();
    for r in v
        .get("responses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = r.get("id").and_then(|i| {
            i.as_str()
                .map(str::to_string)
                .or_else(|| i.as_u64().map(|n| n.to_string()))
        }) else {
            continue;
        };
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
        let headers = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            k.to_ascii_lowercase(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            id,
            BatchItem {
                status,
                headers,
                body: r.get("body").cloned().unwrap_or(Value::Null),
            },
        );
    }
    out
}

fn retryable(status: u16) -> bool {
    matches!(status, 0 | 429 | 503 | 504)
}

/// Runs relative GET `urls` (e.g. `/users/{id}/photo`) through `$batch`, 20 per request,
/// `concurrency` batches at a time. Results are in input order. A batch request that fails as
/// a whole is an error.
pub async fn batch_get(
    client: &GraphClient,
    urls: &[String],
    concurrency: usize,
    max_wait: Duration,
) -> Result<Vec<BatchItem>, CallError> {
    let mut results: Vec<BatchItem> = vec![
        BatchItem {
            status: 0,
            headers: BTreeMap::new(),
            body: Value::Null
        };
        urls.len()
    ];
    let mut pending: Vec<usize> = (0..urls.len()).collect();
    for round in 0..MAX_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let chunks: Vec<Vec<usize>> = pending.chunks(MAX_BATCH).map(<[usize]>::to_vec).collect();
        let answers: Vec<Result<ChunkAnswer, CallError>> = futures::stream::iter(chunks)
            .map(|chunk| async move {
                let requests: Vec<Value> = chunk
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| json!({"id": (n + 1).to_string(), "method": "GET", "url": urls[i]}))
                    .collect();
                let body = json!({ "requests": requests });
                let reply = client.send(Method::POST, "$batch", Some(&body), &[], "POST $batch").await?;
                let v = json_or_error(reply, "POST $batch")?;
                Ok((chunk, parse_batch_response(&v)))
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut next = Vec::new();
        let mut wait = Duration::ZERO;
        for answer in answers {
            let (chunk, items) = answer?;
            for (n, &i) in chunk.iter().enumerate() {
                let item = items
                    .get(&(n + 1).to_string())
                    .cloned()
                    .unwrap_or(BatchItem {
                        status: 0,
                        headers: BTreeMap::new(),
                        body: Value::Null,
                    });
                if retryable(item.status) {
                    let d = item
                        .headers
                        .get("retry-after")
                        .and_then(|v| parse_retry_after(v))
                        .unwrap_or(Duration::from_secs(1 << round.min(5)));
                    wait = wait.max(d);
                    next.push(i);
                }
                results[i] = item;
            }
        }
        pending = next;
        if !pending.is_empty() && round + 1 < MAX_ROUNDS {
            tracing::debug!(
                items = pending.len(),
                wait_ms = wait.as_millis() as u64,
                "re-sending throttled batch items"
            );
            tokio::time::sleep(wait.min(max_wait)).await;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_batch_items() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/graph");
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/batch_photo_response.json")).unwrap(),
        )
        .unwrap();
        let items = parse_batch_response(&v);
        assert_eq!(items["1"].status, 200);
        assert_eq!(items["1"].body["@odata.mediaEtag"], "\"BA09D118\"");
        assert_eq!(items["2"].status, 404);
        assert_eq!(items["3"].status, 429);
        assert_eq!(
            parse_retry_after(&items["3"].headers["retry-after"]),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            items["4"].body["error"]["code"],
            "Authorization_RequestDenied"
        );
        assert!(retryable(429) && retryable(503) && !retryable(404));
    }
}
