//! Places where the Atlassian emulators used to be kinder than the products (issue 11 items
//! 8–10).

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};

async fn start(p: Product) -> (AtlassianEmulator, Client) {
    let emu = AtlassianEmulator::start(AtlassianConfig::new(p))
        .await
        .unwrap();
    (emu, Client::new())
}

/// Item 8: Crowd `max-results=-1` means "all results", not an empty page.
#[tokio::test]
async fn crowd_max_results_minus_one_returns_everything() {
    let (emu, c) = start(Product::Crowd).await;
    let api = format!("{}/rest/usermanagement/1", emu.base_url());
    let a = |r: reqwest::RequestBuilder| {
        r.basic_auth("usersync", Some("usersync"))
            .header("accept", "application/json")
    };
    for i in 0..5 {
        let r = a(c.post(format!("{api}/user")))
            .json(
                &json!({"name": format!("u{i}"), "first-name": "F", "last-name": "L",
                "display-name": "D", "email": format!("u{i}@example.com"),
                "password": {"value": "pw"}, "active": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let all: Value = a(c.get(format!("{api}/search?entity-type=user")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = all["users"].as_array().unwrap().len();
    assert!(n >= 5);
    let v: Value = a(c.get(format!("{api}/search?entity-type=user&max-results=-1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), n, "{v}");
    emu.shutdown().await;
}

/// Item 10: malformed input the products refuse.
#[tokio::test]
async fn malformed_active_flag_and_control_character_group_names_are_refused() {
    let (emu, c) = start(Product::Jira).await;
    let api = format!("{}/rest/api/2", emu.base_url());
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/user")))
        .json(&json!({"name": "bob", "emailAddress": "bob@example.com", "displayName": "Bob", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = a(c.put(format!("{api}/user?username=bob")))
        .json(&json!({"active": "maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = a(c.put(format!("{api}/user?username=bob")))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = a(c.post(format!("{api}/group")))
        .json(&json!({"name": "\u{0}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    emu.shutdown().await;

    let (emu, c) = start(Product::Crowd).await;
    let r = c
        .post(format!("{}/rest/usermanagement/1/group", emu.base_url()))
        .basic_auth("usersync", Some("usersync"))
        .header("accept", "application/json")
        .json(&json!({"name": "bad\u{0}name", "type": "GROUP", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    emu.shutdown().await;
}

/// Item 9: Confluence's licence user count.
#[tokio::test]
async fn confluence_licence_user_count() {
    let (emu, c) = start(Product::Confluence).await;
    let r = c
        .get(format!(
            "{}/rest/license/1.0/license/userCount",
            emu.base_url()
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v["count"].as_u64().unwrap() >= 1, "{v}");
    emu.shutdown().await;
}
