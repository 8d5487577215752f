//! Confluence DC emulator over real HTTP: admin user API, username rules, licence 402,
//! idempotent memberships, paging with `_links.next`, RestError bodies.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product, SeedUser};

async fn conf(seats: Option<usize>) -> (AtlassianEmulator, Client, String) {
    let mut cfg = AtlassianConfig::new(Product::Confluence);
    cfg.licence_seats = seats;
    let emu = AtlassianEmulator::start(cfg).await.unwrap();
    let api = format!("{}/rest/api", emu.base_url());
    (emu, Client::new(), api)
}

fn new_user(name: &str) -> Value {
    json!({"userName": name, "fullName": format!("{name} full"), "email": format!("{name}@example.com"), "password": "pw", "notifyViaEmail": false})
}

#[tokio::test]
async fn create_validate_disable_delete() {
    let (emu, c, api) = conf(None).await;
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&new_user("kim"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key: Value = r.json().await.unwrap();
    assert_eq!(key["userKey"].as_str().unwrap().len(), 32);
    // New users land in the default group.
    assert_eq!(
        emu.handle().groups_of("kim"),
        vec!["confluence-users".to_string()]
    );

    // Username rules: upper case, forbidden characters, whitespace, anonymous.
    for bad in ["Kim2", "a,b", "a b", "x<y", "anonymous", "q\"", ""] {
        let r = a(c.post(format!("{api}/admin/user")))
            .json(&new_user(bad))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["statusCode"], 400);
        assert!(e["message"].is_string() && e["reason"].is_string() && e["data"].is_object());
    }
    // notifyViaEmail=false needs a password; true forbids it.
    let mut body = new_user("lee");
    body.as_object_mut().unwrap().remove("password");
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Duplicate -> 409.
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&new_user("kim"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // Update fullName/email -> 204.
    let r = a(c.put(format!("{api}/admin/user/KIM")))
        .json(&json!({"fullName":"Kim New","email":"k2@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(emu.handle().user("kim").unwrap().display_name, "Kim New");
    // updateUser documents only 400 for failures: unknown user, bad fullName or e-mail.
    for (who, body) in [
        ("ghost", json!({"fullName":"G"})),
        ("kim", json!({"fullName":"<b>"})),
        ("kim", json!({"email":"not-an-email"})),
    ] {
        let r = a(c.put(format!("{api}/admin/user/{who}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{who} {body}");
    }

    // Disable/enable idempotent 204.
    for _ in 0..2 {
        let r = a(c.put(format!("{api}/admin/user/kim/disable")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert!(!emu.handle().user("kim").unwrap().active);
    let p: Value = a(c.get(format!("{api}/user?username=kim&expand=status")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["status"], "Deactivated");
    let r = a(c.put(format!("{api}/admin/user/kim/enable")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a(c.put(format!("{api}/admin/user/ghost/disable")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Delete -> 202 long task; query form -> 405.
    let r = a(c.delete(format!("{api}/admin/user?name=kim")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = a(c.delete(format!("{api}/admin/user/kim")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let t: Value = r.json().await.unwrap();
    let status_url = t["links"]["status"].as_str().unwrap().to_string();
    let st: Value = a(c.get(status_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["finished"], true);
    assert!(emu.handle().user("kim").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn licence_full_gives_402() {
    let (emu, c, api) = conf(Some(2)).await;
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    // admin uses one seat.
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&new_user("one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&new_user("two"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.json::<Value>().await.unwrap()["statusCode"], 402);
    // Disabling frees a seat.
    a(c.put(format!("{api}/admin/user/one/disable")))
        .send()
        .await
        .unwrap();
    let r = a(c.post(format!("{api}/admin/user")))
        .json(&new_user("two"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(emu.handle().licensed_users(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn groups_memberships_paging() {
    let (emu, c, api) = conf(None).await;
    for i in 0..7 {
        emu.handle().seed_user(SeedUser::new(&format!("m{i}")));
    }
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/admin/group")))
        .json(&json!({"name":"Writers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = a(c.post(format!("{api}/admin/group")))
        .json(&json!({"name":"writers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    for i in 0..7 {
        for _ in 0..2 {
            let r = a(c.put(format!("{api}/user/M{i}/group/WRITERS")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
    }
    let r = a(c.put(format!("{api}/user/ghost/group/writers")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Page through members with limit 3 following _links.next.
    let mut url = format!("{api}/group/writers/member?limit=3");
    let mut names = Vec::new();
    loop {
        let p: Value = a(c.get(&url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(p["limit"], 3);
        assert_eq!(
            p["size"].as_u64().unwrap() as usize,
            p["results"].as_array().unwrap().len()
        );
        names.extend(
            p["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_string()),
        );
        match p["_links"]["next"].as_str() {
            Some(n) => url = format!("{}{}", p["_links"]["base"].as_str().unwrap(), n),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("m{i}")).collect::<Vec<_>>());

    let mo: Value = a(c.get(format!("{api}/user/memberof?username=m0")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mo["results"][0]["name"], "writers");
    // Remove membership is idempotent too.
    for _ in 0..2 {
        let r = a(c.delete(format!("{api}/user/m0/group/writers")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    // Non-admin gets 403 on group members; unauthenticated 401.
    emu.handle().seed_user(SeedUser::new("reader"));
    let r = c
        .get(format!("{api}/group/writers/member"))
        .basic_auth("reader", Some("reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.get(format!("{api}/user/list")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // User list includes everyone.
    let all: Value = c
        .get(format!("{api}/user/list?limit=100"))
        .bearer_auth("emulator-pat")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["size"], 9);
    let r = a(c.delete(format!("{api}/admin/group/writers")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a(c.delete(format!("{api}/admin/group/writers")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        emu.stats()
            .get("PUT /rest/api/user/{username}/group/{group}"),
        15
    );
    emu.shutdown().await;
}
