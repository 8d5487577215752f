//! Test-only control surface under `{base}/_emulator/`: read the directory and the request
//! counters over HTTP (for the Python checks and the demo). Not part of any Atlassian API.
//!
//! - `GET /_emulator/state`: [`Snapshot`](super::Snapshot) as JSON.
//! - `GET /_emulator/stats`: [`RequestStats`](super::RequestStats) as JSON.
//! - `POST /_emulator/stats/reset`: zero the counters (204).
//! - `POST /_emulator/faults`: `{"throttle_next":N,"retry_after_secs":S,"maintenance":bool,
//!   "latency_ms":N}` — each field optional (204).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};

use super::directory::DirectoryHandle;
use super::{Shared, empty, json, parse_body};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset))
        .route("/_emulator/faults", post(faults))
}

fn handle(s: Arc<Shared>) -> DirectoryHandle {
    DirectoryHandle { shared: s }
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    json(
        200,
        serde_json::to_value(handle(s).snapshot()).unwrap_or_default(),
    )
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    json(
        200,
        serde_json::to_value(handle(s).stats()).unwrap_or_default(),
    )
}

async fn reset(State(s): State<Arc<Shared>>) -> Response {
    handle(s).reset_stats();
    empty(204)
}

async fn faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(v) = parse_body(&body) else {
        return json(400, serde_json::json!({"message": "JSON body required"}));
    };
    let h = handle(s);
    h.update_faults(|f| {
        if let Some(n) = v.get("throttle_next").and_then(|x| x.as_u64()) {
            f.throttle_next = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = v.get("retry_after_secs").and_then(|x| x.as_u64()) {
            f.retry_after_secs = n;
        }
        if let Some(m) = v.get("maintenance").and_then(|x| x.as_bool()) {
            f.maintenance = m;
        }
        if let Some(n) = v.get("latency_ms").and_then(|x| x.as_u64()) {
            f.latency = std::time::Duration::from_millis(n);
        }
    });
    empty(204)
}
