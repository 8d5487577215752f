//! Fault injection, rate limiting, latency and request counting, shared by all products.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{
    AtlassianConfig, AtlassianEmulator, FailRule, Product, RateLimit,
};

#[tokio::test]
async fn jira_token_bucket_headers_and_429() {
    let mut cfg = AtlassianConfig::new(Product::Jira);
    cfg.rate_limit = Some(RateLimit {
        capacity: 3,
        fill_rate: 1,
        interval_secs: 60,
    });
    let emu = AtlassianEmulator::start(cfg).await.unwrap();
    let c = Client::new();
    let url = format!("{}/rest/api/2/myself", emu.base_url());
    for remaining in [2, 1, 0] {
        let r = c
            .get(&url)
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        assert_eq!(r.headers()["x-ratelimit-fillrate"], "1");
        assert_eq!(r.headers()["x-ratelimit-interval-seconds"], "60");
        assert_eq!(r.headers()["retry-after"], "0");
    }
    let r = c
        .get(&url)
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let e: Value = r.json().await.unwrap();
    assert!(e["errorMessages"].is_array());
    // Buckets are per credential: the PAT has its own.
    let r = c
        .get(&url)
        .bearer_auth("emulator-pat")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Requests that got 429 are still counted.
    assert_eq!(emu.stats().get("GET /rest/api/2/myself"), 5);
    emu.handle().set_rate_limit(None);
    let r = c
        .get(&url)
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-ratelimit-limit").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn injected_429_503_nth_failure_and_user_failure() {
    let emu = AtlassianEmulator::start(AtlassianConfig::new(Product::Bitbucket))
        .await
        .unwrap();
    let c = Client::new();
    let base = emu.base_url();
    let h = emu.handle();
    h.inject_429(2, 5);
    for _ in 0..2 {
        let r = c
            .get(format!("{base}/rest/api/1.0/admin/users"))
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "5");
        let e: Value = r.json().await.unwrap();
        assert!(e["errors"].is_array());
    }
    let r = c
        .get(format!("{base}/rest/api/1.0/admin/users"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    h.set_maintenance(true);
    let r = c
        .get(format!("{base}/rest/api/1.0/admin/users"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.set_maintenance(false);

    // Fail the 2nd create only.
    h.add_fail_rule(FailRule {
        method: Some("POST".into()),
        route: Some("/rest/api/1.0/admin/groups".into()),
        nth: 2,
        status: 500,
        message: "boom".into(),
    });
    let mut statuses = Vec::new();
    for g in ["g1", "g2", "g3"] {
        let r = c
            .post(format!("{base}/rest/api/1.0/admin/groups?name={g}"))
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 500, 200]);
    assert!(h.group("g2").is_none());

    // A product error for one user name, on create and on membership writes.
    h.fail_writes_for_user("Blocked", 403, "Licence limit reached for blocked");
    let r = c
        .post(format!("{base}/rest/api/1.0/admin/users?name=blocked&password=p&displayName=B&emailAddress=b@example.com"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["message"],
        "Licence limit reached for blocked"
    );
    assert!(h.user("blocked").is_none());

    // Control endpoint mirrors the handle.
    let s: Value = c
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["requests"]["POST /rest/api/1.0/admin/groups"], 3);
    assert_eq!(s["total"].as_u64().unwrap(), emu.stats().total());
    let st: Value = c
        .get(format!("{base}/_emulator/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        st["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "g3")
    );
    assert!(
        st["memberships"]["stash-users"]
            .as_array()
            .unwrap()
            .contains(&json!("admin"))
    );
    let r = c
        .post(format!("{base}/_emulator/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(emu.stats().total(), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn latency_applies_and_unknown_routes_use_product_errors() {
    let mut cfg = AtlassianConfig::new(Product::Confluence);
    cfg.latency = Duration::from_millis(150);
    cfg.context_path = String::new();
    let emu = AtlassianEmulator::start(cfg).await.unwrap();
    assert!(!emu.base_url().ends_with('/'));
    let c = Client::new();
    let t = Instant::now();
    let r = c
        .get(format!("{}/rest/api/user/current", emu.base_url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));
    emu.handle().set_latency(Duration::ZERO);
    let r = c
        .get(format!("{}/rest/api/nothing/here", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["statusCode"], 404);
    emu.shutdown().await;
}

#[test]
fn rate_limit_parse() {
    assert_eq!(
        RateLimit::parse("10/2/5").unwrap(),
        RateLimit {
            capacity: 10,
            fill_rate: 2,
            interval_secs: 5
        }
    );
    assert_eq!(
        RateLimit::parse("4").unwrap(),
        RateLimit {
            capacity: 4,
            fill_rate: 4,
            interval_secs: 1
        }
    );
    assert!(RateLimit::parse("0/1/1").is_err());
    assert!(RateLimit::parse("a/b").is_err());
}

#[tokio::test]
async fn hostile_input_never_panics() {
    let c = Client::new();
    let jira = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira))
        .await
        .unwrap();
    let api = format!("{}/rest/api/2", jira.base_url());
    for url in [
        format!("{api}/group?groupname=jira-software-users&expand=users[0:18446744073709551615]"),
        format!(
            "{api}/group/member?groupname=jira-software-users&startAt=99999999999999999999&maxResults=-5"
        ),
        format!("{api}/user/search?username=%FF%FE&startAt=9223372036854775807"),
        format!("{api}/user/list?cursor=-1&maxResults=0"),
        format!("{api}/mypermissions?permissions=NOPE"),
    ] {
        let r = c
            .get(&url)
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{url}: {}", r.status());
    }
    let r = c
        .put(format!("{api}/user?username=admin"))
        .basic_auth("admin", Some("admin"))
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    jira.shutdown().await;

    let crowd = AtlassianEmulator::start(AtlassianConfig::new(Product::Crowd))
        .await
        .unwrap();
    let api = format!("{}/rest/usermanagement/1", crowd.base_url());
    for q in [
        "name=\"İİİ and x\" AND email=é*",
        "name",
        "(name=a) or name=b",
        "ß=ẞ and  and ",
    ] {
        let r = c
            .get(format!("{api}/search"))
            .query(&[("entity-type", "user"), ("restriction", q)])
            .basic_auth("usersync", Some("usersync"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{q}: {}", r.status());
    }
    crowd.shutdown().await;
}
