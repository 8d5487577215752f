//! Helpers shared by the Graph emulator integration tests (real HTTP via reqwest).
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use serde_json::Value;
use usersync_emulators::graph::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, GraphEmulator,
};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// POSTs a client-secret token request; returns (status, body).
pub async fn token_request(
    emu: &GraphEmulator,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    let r = client()
        .post(format!("{}/{}/oauth2/v2.0/token", emu.login_url(), tenant))
        .form(&[
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .expect("send");
    let st = r.status().as_u16();
    (st, r.json().await.expect("json"))
}

/// A token for the default app.
pub async fn token(emu: &GraphEmulator) -> String {
    let (st, v) = token_request(
        emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// GET with a bearer token; returns (status, headers, JSON body or Null).
pub async fn get(url: &str, token: &str) -> (u16, HeaderMap, Value) {
    get_h(url, token, &[]).await
}

pub async fn get_h(url: &str, token: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let mut rb = client().get(url).bearer_auth(token);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("send");
    let st = r.status().as_u16();
    let h = r.headers().clone();
    let bytes = r.bytes().await.expect("bytes");
    (st, h, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Follows `@odata.nextLink` to the end; returns all items and the final page (with the
/// deltaLink, if any).
pub async fn collect(url: &str, token: &str) -> (Vec<Value>, Value, usize) {
    let mut items = Vec::new();
    let mut next = url.to_string();
    let mut pages = 0;
    loop {
        let (st, _, v) = get(&next, token).await;
        assert_eq!(st, 200, "{next}: {v}");
        pages += 1;
        items.extend(v["value"].as_array().cloned().unwrap_or_default());
        match v["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => return (items, v, pages),
        }
    }
}

/// Asserts the Graph error body shape and returns the code.
pub fn error_code(v: &Value) -> String {
    let e = &v["error"];
    assert!(e["message"].is_string(), "{v}");
    assert!(e["innerError"]["request-id"].is_string(), "{v}");
    assert!(e["innerError"]["client-request-id"].is_string(), "{v}");
    assert!(e["innerError"]["date"].is_string(), "{v}");
    e["code"].as_str().unwrap_or_default().to_string()
}

/// Like [`collect`] but sends `headers` on every page (Graph does not carry them in nextLinks).
pub async fn collect_h(url: &str, token: &str, headers: &[(&str, &str)]) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = url.to_string();
    loop {
        let (st, _, v) = get_h(&next, token, headers).await;
        assert_eq!(st, 200, "{next}: {v}");
        items.extend(v["value"].as_array().cloned().unwrap_or_default());
        match v["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => return items,
        }
    }
}

/// `ConsistencyLevel: eventual`, the advanced-query header.
pub const EVENTUAL: &[(&str, &str)] = &[("ConsistencyLevel", "eventual")];
