//! Bitbucket DC emulator over real HTTP: query-parameter create, rename, delete with entity,
//! batch memberships, licensing through LICENSED_USER, paging and avatar upload.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product, SeedUser};

async fn bb(seats: Option<usize>) -> (AtlassianEmulator, Client, String) {
    let mut cfg = AtlassianConfig::new(Product::Bitbucket);
    cfg.licence_seats = seats;
    let emu = AtlassianEmulator::start(cfg).await.unwrap();
    let api = format!("{}/rest/api/1.0", emu.base_url());
    (emu, Client::new(), api)
}

fn create_q(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_string()),
        ("password", "pw".into()),
        ("displayName", format!("{name} display")),
        ("emailAddress", format!("{name}@example.com")),
        ("addToDefaultGroup", "true".into()),
        ("notify", "false".into()),
    ]
}

#[tokio::test]
async fn users_rename_delete_and_errors() {
    let (emu, c, api) = bb(None).await;
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/admin/users")))
        .query(&create_q("Ann"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        emu.handle().groups_of("ann"),
        vec!["stash-users".to_string()]
    );
    let r = a(c.post(format!("{api}/admin/users")))
        .query(&create_q("ANN"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let e: Value = r.json().await.unwrap();
    assert!(e["errors"][0]["message"].is_string());
    assert!(e["errors"][0].as_object().unwrap().contains_key("context"));
    assert!(e["errors"][0]["exceptionName"].is_string());
    // Missing password with notify=false -> 400.
    let r = a(c.post(format!(
        "{api}/admin/users?name=x&displayName=x&emailAddress=x@example.com"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = a(c.put(format!("{api}/admin/users")))
        .json(&json!({"name":"ann","displayName":"Ann B","email":"annb@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["displayName"], "Ann B");
    assert_eq!(u["slug"], "ann");

    let id = emu.handle().user("ann").unwrap().id;
    let r = a(c.post(format!("{api}/admin/users/rename")))
        .json(&json!({"name":"ann","newName":"anne"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["name"], "anne");
    assert_eq!(u["id"], id);
    assert_eq!(
        emu.handle().groups_of("anne"),
        vec!["stash-users".to_string()]
    );
    let r = a(c.post(format!("{api}/admin/users/rename")))
        .json(&json!({"name":"anne","newName":"admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let got: Value = a(c.get(format!("{api}/users/anne")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "anne");

    let r = a(c.delete(format!("{api}/admin/users?name=ANNE")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "anne");
    let r = a(c.delete(format!("{api}/admin/users?name=anne")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = a(c.delete(format!("{api}/admin/users?name=admin")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // Non-admin: Bitbucket answers 401 for insufficient permission.
    emu.handle().seed_user(SeedUser::new("dev"));
    let r = c
        .get(format!("{api}/admin/users"))
        .basic_auth("dev", Some("dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // /rest/api/latest alias.
    let r = a(c.get(format!("{}/rest/api/latest/admin/users", emu.base_url())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    emu.shutdown().await;
}

#[tokio::test]
async fn groups_batch_membership_paging() {
    let (emu, c, api) = bb(None).await;
    for i in 0..30 {
        emu.handle().seed_user(SeedUser::new(&format!("p{i:02}")));
    }
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/admin/groups?name=Team")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name":"Team","deletable":true})
    );
    let r = a(c.post(format!("{api}/admin/groups?name=team")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let users: Vec<String> = (0..30).map(|i| format!("P{i:02}")).collect();
    let r = a(c.post(format!("{api}/admin/groups/add-users")))
        .json(&json!({"group":"TEAM","users":users}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Batch with one unknown user adds nobody.
    let r = a(c.post(format!("{api}/admin/groups/add-users")))
        .json(&json!({"group":"stash-users","users":["p00","ghost"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        !emu.handle()
            .groups_of("p00")
            .contains(&"stash-users".to_string())
    );

    // more-members paging: default limit 25, nextPageStart.
    let p: Value = a(c.get(format!("{api}/admin/groups/more-members?context=team")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["limit"], 25);
    assert_eq!(p["size"], 25);
    assert_eq!(p["isLastPage"], false);
    assert_eq!(p["nextPageStart"], 25);
    let p: Value = a(c.get(format!(
        "{api}/admin/groups/more-members?context=team&start=25"
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(p["size"], 5);
    assert_eq!(p["isLastPage"], true);
    assert!(p.get("nextPageStart").is_none());

    let r = a(c.post(format!("{api}/admin/users/add-groups")))
        .json(&json!({"user":"p01","groups":["stash-users"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let g: Value = a(c.get(format!("{api}/admin/users/more-members?context=P01")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = g["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["stash-users", "Team"]);

    let r = a(c.post(format!("{api}/admin/groups/remove-user")))
        .json(&json!({"context":"team","itemName":"p01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!emu.handle().members("team").contains(&"p01".to_string()));

    let r = a(c.delete(format!("{api}/admin/groups?name=TEAM")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Team");
    let r = a(c.delete(format!("{api}/admin/groups?name=team")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    emu.shutdown().await;
}

#[tokio::test]
async fn licensing_via_group_permission_and_avatar() {
    let (emu, c, api) = bb(Some(2)).await;
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let r = a(c.post(format!("{api}/admin/users")))
        .query(&create_q("one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Full: adding to the default (licensed) group -> 403.
    let r = a(c.post(format!("{api}/admin/users")))
        .query(&create_q("two"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Without the default group it is fine, but licensing via a group then fails.
    let mut q = create_q("two");
    q[4].1 = "false".into();
    let r = a(c.post(format!("{api}/admin/users")))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    a(c.post(format!("{api}/admin/groups?name=devs")))
        .send()
        .await
        .unwrap();
    a(c.post(format!("{api}/admin/groups/add-users")))
        .json(&json!({"group":"devs","users":["two"]}))
        .send()
        .await
        .unwrap();
    let r = a(c.put(format!(
        "{api}/admin/permissions/groups?name=devs&permission=LICENSED_USER"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let perms: Value = a(c.get(format!("{api}/admin/permissions/groups")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        perms["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["group"]["name"] == "devs" && p["permission"] == "LICENSED_USER")
    );
    // "Deactivation" in Bitbucket: remove the licensing group.
    a(c.post(format!("{api}/admin/groups/remove-user")))
        .json(&json!({"context":"stash-users","itemName":"one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(emu.handle().licensed_users(), 2);

    // Avatar: multipart field `avatar`, XSRF header, 201.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    let part = || {
        reqwest::multipart::Form::new().part(
            "avatar",
            reqwest::multipart::Part::bytes(png.clone())
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap(),
        )
    };
    let r = a(c.post(format!("{api}/users/two/avatar.png")))
        .multipart(part())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = a(c.post(format!("{api}/users/two/avatar.png")))
        .header("X-Atlassian-Token", "no-check")
        .multipart(part())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(emu.handle().user("two").unwrap().avatar.unwrap().bytes, png);
    let r = c
        .get(format!("{api}/users/two/avatar.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), png);
    emu.shutdown().await;
}
