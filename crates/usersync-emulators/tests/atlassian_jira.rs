//! Jira DC emulator over real HTTP: users, rename, deactivate, groups, paging, application
//! roles, avatars, auth and error shapes.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product, SeedUser};

async fn jira() -> (AtlassianEmulator, Client, String) {
    let emu = AtlassianEmulator::start(AtlassianConfig::new(Product::Jira))
        .await
        .unwrap();
    let api = format!("{}/rest/api/2", emu.base_url());
    (emu, Client::new(), api)
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 200, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn user_lifecycle_rename_deactivate_delete() {
    let (emu, c, api) = jira().await;
    assert!(emu.base_url().ends_with("/jira"));
    let r = c
        .post(format!("{api}/user"))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"name":"Jane.Doe","password":"pw","emailAddress":"jane@example.com","displayName":"Jane Doe","applicationKeys":["jira-core"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("location").is_some());
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["applicationKeys"], json!(["jira-core"]));
    // applicationKeys -> the role's default groups (licences follow group membership).
    assert_eq!(
        emu.handle().groups_of("jane.doe"),
        vec!["jira-core-users".to_string()]
    );

    // Case-insensitive duplicate -> 400 ErrorCollection with a field error.
    let r = c
        .post(format!("{api}/user"))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"name":"JANE.DOE","emailAddress":"other@example.com","displayName":"X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert!(e["errorMessages"].is_array());
    assert!(e["errors"]["username"].is_string());

    // Duplicate e-mails are allowed in Jira.
    let r = c
        .post(format!("{api}/user"))
        .bearer_auth("emulator-pat")
        .json(&json!({"name":"jd2","emailAddress":"jane@example.com","displayName":"JD2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Invalid username characters and unknown application keys.
    for body in [
        json!({"name":"a<b","emailAddress":"x@example.com","displayName":"X"}),
        json!({"name":"ok","emailAddress":"x@example.com","displayName":"X","applicationKeys":["nope"]}),
        json!({"name":"ok","emailAddress":"","displayName":"X"}),
    ] {
        let r = c
            .post(format!("{api}/user"))
            .basic_auth("admin", Some("admin"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }

    // Rename keeps the key; deactivate with the string "false".
    let r = c
        .put(format!("{api}/user"))
        .query(&[("username", "JANE.DOE")])
        .basic_auth("admin", Some("admin"))
        .json(&json!({"name":"jane.smith","active":"false","displayName":"Jane Smith"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let u = emu.handle().user("Jane.Smith").unwrap();
    assert_eq!(u.key, key);
    assert!(!u.active);
    assert_eq!(u.display_name, "Jane Smith");
    assert!(emu.handle().user("jane.doe").is_none());

    // Get by key.
    let got: Value = c
        .get(format!("{api}/user"))
        .query(&[("key", key.as_str()), ("expand", "groups")])
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "jane.smith");
    assert_eq!(got["active"], false);
    assert_eq!(got["groups"]["items"][0]["name"], "jira-core-users");

    // Delete -> 204, then 404 ErrorCollection.
    let r = c
        .delete(format!("{api}/user?username=jane.smith"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .get(format!("{api}/user?username=jane.smith"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e: Value = r.json().await.unwrap();
    assert!(!e["errorMessages"].as_array().unwrap().is_empty());

    // Cannot delete yourself.
    let r = c
        .delete(format!("{api}/user?username=admin"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let s = emu.stats();
    assert_eq!(s.get("POST /rest/api/2/user"), 6);
    assert_eq!(s.get("PUT /rest/api/2/user"), 1);
    assert_eq!(s.get("DELETE /rest/api/2/user"), 2);
    assert_eq!(s.writes(), 9);
    emu.reset_stats();
    assert_eq!(emu.stats().total(), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn groups_membership_statuses_and_paging() {
    let (emu, c, api) = jira().await;
    for i in 0..120 {
        emu.handle()
            .seed_user(SeedUser::new(&format!("u{i:03}")).in_groups(&["Big"]));
    }
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));

    let r = auth(c.post(format!("{api}/group")))
        .json(&json!({"name":"Devs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let g: Value = r.json().await.unwrap();
    assert_eq!(g["name"], "Devs");
    let r = auth(c.post(format!("{api}/group")))
        .json(&json!({"name":"devs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = auth(c.post(format!("{api}/group/user?groupname=DEVS")))
        .json(&json!({"name":"U001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = auth(c.post(format!("{api}/group/user?groupname=devs")))
        .json(&json!({"name":"u001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = auth(c.post(format!("{api}/group/user?groupname=devs")))
        .json(&json!({"name":"ghost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = auth(c.post(format!("{api}/group/user?groupname=nogroup")))
        .json(&json!({"name":"u001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.handle().members("devs"), vec!["u001".to_string()]);

    let r = auth(c.delete(format!("{api}/group/user?groupname=devs&username=U001")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = auth(c.delete(format!("{api}/group/user?groupname=devs&username=U001")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = auth(c.delete(format!("{api}/group?groupname=devs")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = auth(c.delete(format!("{api}/group?groupname=devs")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // /group/member paging: maxResults capped at 50, total and isLast, nextPage.
    let mut names = Vec::new();
    let mut start = 0;
    loop {
        let p: Value = auth(c.get(format!(
            "{api}/group/member?groupname=big&startAt={start}&maxResults=500"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(p["maxResults"], 50);
        assert_eq!(p["total"], 120);
        for v in p["values"].as_array().unwrap() {
            names.push(v["name"].as_str().unwrap().to_string());
        }
        if p["isLast"] == true {
            assert!(p.get("nextPage").is_none());
            break;
        }
        assert!(p["nextPage"].as_str().unwrap().contains("startAt="));
        start += 50;
    }
    assert_eq!(names.len(), 120);

    // /user/search: "." matches everyone, bare array, truncated at the configured cap.
    let all: Value = auth(c.get(format!("{api}/user/search?username=.&maxResults=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 121);
    let p2: Value = auth(c.get(format!(
        "{api}/user/search?username=u1&startAt=10&maxResults=5"
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(p2.as_array().unwrap().len(), 5);

    // /user/list cursor paging.
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let url = match &cursor {
            Some(cur) => format!("{api}/user/list?maxResults=50&cursor={cur}"),
            None => format!("{api}/user/list?maxResults=50"),
        };
        let p: Value = auth(c.get(url)).send().await.unwrap().json().await.unwrap();
        seen += p["values"].as_array().unwrap().len();
        if p["isLast"] == true {
            break;
        }
        cursor = Some(p["nextCursor"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, 121);

    // Group picker lists groups.
    let gp: Value = auth(c.get(format!("{api}/groups/picker?query=BI&maxResults=100")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gp["groups"][0]["name"], "Big");
    assert_eq!(gp["total"], 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn application_roles_and_access() {
    let (emu, c, api) = jira().await;
    let roles: Value = c
        .get(format!("{api}/applicationrole"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sw = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "jira-software")
        .unwrap();
    assert_eq!(sw["defaultGroups"], json!(["jira-software-users"]));
    emu.handle().seed_user(SeedUser::new("nolicence"));
    let r = c
        .post(format!(
            "{api}/user/application?username=nolicence&applicationKey=jira-software"
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        emu.handle().groups_of("nolicence"),
        vec!["jira-software-users".to_string()]
    );
    let r = c
        .delete(format!(
            "{api}/user/application?username=nolicence&applicationKey=jira-software"
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(emu.handle().groups_of("nolicence").is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn avatar_three_steps() {
    let (emu, c, api) = jira().await;
    let img = png(64, 48);
    // Without the XSRF header -> 403.
    let r = c
        .post(format!(
            "{api}/user/avatar/temporary?username=admin&filename=a.png"
        ))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "image/png")
        .body(img.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!(
            "{api}/user/avatar/temporary?username=admin&filename=a.png&size={}",
            img.len()
        ))
        .basic_auth("admin", Some("admin"))
        .header("X-Atlassian-Token", "no-check")
        .header("content-type", "image/png")
        .body(img.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let crop: Value = r.json().await.unwrap();
    assert_eq!(crop["needsCropping"], true);
    // Multipart variant answers text/html.
    let form = reqwest::multipart::Form::new().part(
        "avatar",
        reqwest::multipart::Part::bytes(img.clone())
            .file_name("a.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = c
        .post(format!("{api}/user/avatar/temporary?username=admin"))
        .basic_auth("admin", Some("admin"))
        .header("X-Atlassian-Token", "no-check")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = c
        .post(format!("{api}/user/avatar?username=admin"))
        .basic_auth("admin", Some("admin"))
        .json(
            &json!({"cropperWidth":48,"cropperOffsetX":0,"cropperOffsetY":0,"needsCropping":false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let av: Value = r.json().await.unwrap();
    let r = c
        .put(format!("{api}/user/avatar?username=admin"))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"id": av["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stored = emu.handle().user("admin").unwrap().avatar.unwrap();
    assert_eq!(stored.bytes, img);
    let list: Value = c
        .get(format!("{api}/user/avatars?username=admin"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["custom"][0]["id"], av["id"]);
    let id = av["id"].as_str().unwrap();
    let r = c
        .delete(format!("{api}/user/avatar/{id}?username=admin"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(emu.handle().user("admin").unwrap().avatar.is_none());
    let r = c
        .delete(format!("{api}/user/avatar/{id}?username=admin"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Garbage is not an image.
    let r = c
        .post(format!(
            "{api}/user/avatar/temporary?username=admin&filename=a.png"
        ))
        .basic_auth("admin", Some("admin"))
        .header("X-Atlassian-Token", "no-check")
        .body(b"not an image".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    emu.shutdown().await;
}

#[tokio::test]
async fn auth_admin_check_and_bad_input() {
    let (emu, c, api) = jira().await;
    emu.handle()
        .seed_user(SeedUser::new("plain").in_groups(&["jira-software-users"]));
    // Unauthenticated -> 401.
    let r = c.get(format!("{api}/myself")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(format!("{api}/myself"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A non-admin user authenticates but gets 403 on admin resources.
    let me: Value = c
        .get(format!("{api}/myself"))
        .basic_auth("plain", Some("plain"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "plain");
    let perms: Value = c
        .get(format!("{api}/mypermissions?permissions=ADMINISTER"))
        .basic_auth("plain", Some("plain"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(perms["permissions"]["ADMINISTER"]["havePermission"], false);
    let r = c
        .post(format!("{api}/group"))
        .basic_auth("plain", Some("plain"))
        .json(&json!({"name":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Malformed JSON -> 400 ErrorCollection, never a panic.
    let r = c
        .post(format!("{api}/user"))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert!(e["errors"].is_object());
    // /rest/api/latest is an alias and is counted under /rest/api/2.
    let r = c
        .get(format!("{api}/../latest/serverInfo").replace("/2/../", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(emu.stats().get("GET /rest/api/2/serverInfo"), 1);
    emu.shutdown().await;
}
