//! $batch, throttling and fault injection, request counting.

mod graph_support;

use graph_support::*;
use serde_json::{Value, json};
use usersync_emulators::graph::{
    FaultConfig, GraphConfig, GraphEmulator, RequestFault, ThrottleBudget, UrlFault,
};

async fn batch(emu: &GraphEmulator, tok: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/$batch", emu.graph_url()))
        .bearer_auth(tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn json_batching() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let t = emu.tenant();
    let u = t.user_ids()[0].clone();
    let g = t.group_ids()[0].clone();
    let (st, v) = batch(&emu, &tok, json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{u}?$select=displayName")},
        {"id": "2", "method": "GET", "url": format!("groups/{g}/members?$select=id&$top=999")},
        {"id": "3", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
        {"id": "4", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}},
        {"id": "5", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000/photo", "dependsOn": ["3"]},
    ]})).await;
    assert_eq!(st, 200);
    let by = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by("1")["status"], 200);
    assert!(by("1")["body"]["displayName"].is_string());
    assert!(
        by("1")["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(by("2")["status"], 200);
    assert_eq!(by("3")["status"], 404);
    assert_eq!(by("3")["body"]["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(by("4")["body"], "50");
    assert_eq!(by("5")["status"], 424);
    let s = emu.stats();
    assert_eq!(
        (
            s.get("batch"),
            s.get("batch.item"),
            s.get("users.get"),
            s.get("members")
        ),
        (1, 5, 2, 1)
    );
    assert_eq!(s.total(), 2, "token + one batch: {s:?}");
    // Limits.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (st, v) = batch(&emu, &tok, json!({"requests": many})).await;
    assert_eq!(st, 400, "{v}");
    error_code(&v);
    let (st, _) = batch(&emu, &tok, json!({"requests": [
        {"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/groups"}]})).await;
    assert_eq!(st, 400);
    let (st, _) = batch(&emu, &tok, json!({"nope": 1})).await;
    assert_eq!(st, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn per_item_429_in_batch_and_scripted_faults() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    emu.tenant().set_faults(FaultConfig {
        fail_requests: vec![
            RequestFault {
                request: 2,
                status: 429,
            },
            RequestFault {
                request: 4,
                status: 503,
            },
        ],
        retry_after_secs: 7.0,
        ..FaultConfig::default()
    });
    let reqs: Vec<Value> = (1..=3)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/groups?$top=1"}))
        .collect();
    let (st, v) = batch(&emu, &tok, json!({"requests": reqs})).await;
    assert_eq!(st, 200);
    let items = v["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = items.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0]["id"], "2");
    assert_eq!(throttled[0]["headers"]["Retry-After"], "7");
    assert_eq!(throttled[0]["body"]["error"]["code"], "TooManyRequests");
    let (st, h, v) = get(&format!("{}/users", emu.graph_url()), &tok).await;
    assert_eq!((st, error_code(&v).as_str()), (503, "serviceNotAvailable"));
    assert_eq!(h["retry-after"], "7");
    assert_eq!(
        get(&format!("{}/users", emu.graph_url()), &tok).await.0,
        200
    );
    assert_eq!(emu.stats().get("throttled"), 1);
    assert_eq!(emu.stats().get("faults"), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn fail_a_specific_page_and_random_throttling_is_deterministic() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let (_, _, first) = get(&format!("{}/users?$top=10", emu.graph_url()), &tok).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    let skip = next.split("$skiptoken=").nth(1).unwrap().to_string();
    emu.tenant().set_faults(FaultConfig {
        fail_urls: vec![UrlFault {
            contains: skip,
            status: 504,
            times: 1,
        }],
        ..FaultConfig::default()
    });
    assert_eq!(get(&next, &tok).await.0, 504);
    assert_eq!(get(&next, &tok).await.0, 200, "fails only once");
    let run = |emu: &GraphEmulator| {
        emu.tenant().set_faults(FaultConfig {
            seed: 9,
            throttle_rate: 0.3,
            ..FaultConfig::default()
        });
        let url = format!("{}/groups", emu.graph_url());
        let tok = tok.clone();
        async move {
            let mut pattern = Vec::new();
            for _ in 0..30 {
                pattern.push(get(&url, &tok).await.0);
            }
            pattern
        }
    };
    let a = run(&emu).await;
    let b = run(&emu).await;
    assert_eq!(a, b);
    assert!(a.contains(&429) && a.contains(&200));
    emu.shutdown().await;
}

#[tokio::test]
async fn resource_unit_budget() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    emu.tenant().set_faults(FaultConfig {
        budget: Some(ThrottleBudget {
            resource_units: 10,
            window_secs: 100.0,
            per_request: false,
        }),
        ..FaultConfig::default()
    });
    let url = format!("{}/users", emu.graph_url()); // 2 RU each without $select
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let (st, h, _) = get(&url, &tok).await;
        statuses.push(st);
        if st == 200 {
            assert_eq!(h["x-ms-resource-unit"], "2");
        } else {
            last = Some(h);
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
    let h = last.unwrap();
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        h["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/ReadWrite/")
    );
    assert_eq!(h["x-ms-throttle-information"], "ResourceUnitLimitExceeded");
    emu.reset_stats();
    assert_eq!(emu.stats().total(), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn latency_and_http_control_api() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let c = client();
    let ctl = format!("{}/_emulator", emu.login_url());
    let r: Value = c
        .post(format!("{ctl}/users"))
        .json(&json!({"displayName": "Via HTTP"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let (st, _, v) = get(&format!("{}/users/{id}", emu.graph_url()), &tok).await;
    assert_eq!((st, v["displayName"].as_str()), (200, Some("Via HTTP")));
    let r = c
        .delete(format!("{ctl}/users/{id}?permanent=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        get(&format!("{}/users/{id}", emu.graph_url()), &tok)
            .await
            .0,
        404
    );
    c.put(format!("{ctl}/settings"))
        .json(&json!({"latencyMs": 150}))
        .send()
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    get(&format!("{}/groups", emu.graph_url()), &tok).await;
    assert!(t0.elapsed().as_millis() >= 150);
    c.put(format!("{ctl}/faults"))
        .json(&json!({"throttleRate": 1.0, "retryAfterSecs": 2.5, "decimalRetryAfter": true}))
        .send()
        .await
        .unwrap();
    let (st, h, _) = get(&format!("{}/groups", emu.graph_url()), &tok).await;
    assert_eq!((st, h["retry-after"].to_str().unwrap()), (429, "2.500"));
    let stats: Value = c
        .get(format!("{ctl}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["counts"]["groups"], 2);
    assert_eq!(stats["counts"]["throttled"], 1);
    c.post(format!("{ctl}/stats/reset")).send().await.unwrap();
    assert_eq!(emu.stats().get("groups"), 0);
    emu.shutdown().await;
}
