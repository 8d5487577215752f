//! Crowd usermanagement emulator over real HTTP: application auth, users, attributes, rename,
//! groups, direct memberships (400 vs 404), search paging, `.json` suffix, membership XML.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product};

async fn crowd() -> (AtlassianEmulator, Client, String) {
    let emu = AtlassianEmulator::start(AtlassianConfig::new(Product::Crowd))
        .await
        .unwrap();
    let api = format!("{}/rest/usermanagement/1", emu.base_url());
    (emu, Client::new(), api)
}

fn a(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.basic_auth("usersync", Some("usersync"))
        .header("accept", "application/json")
}

fn user_body(name: &str) -> Value {
    json!({"name": name, "first-name": "First", "last-name": "Last", "display-name": format!("{name} D"), "email": format!("{name}@example.com"),
           "password": {"value": "pw"}, "active": true,
           "attributes": {"attributes": [{"name": "entraObjectId", "values": ["0f3c-1"]}]}})
}

#[tokio::test]
async fn app_auth_users_attributes_rename() {
    let (emu, c, api) = crowd().await;
    // Admin *user* credentials are not application credentials.
    let r = c
        .get(format!("{api}/user?username=x"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());

    let r = a(c.post(format!("{api}/user")))
        .json(&user_body("Zoe"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/user?username=Zoe")
    );
    let r = a(c.post(format!("{api}/user")))
        .json(&user_body("ZOE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "INVALID_USER");
    let mut nopw = user_body("nopw");
    nopw.as_object_mut().unwrap().remove("password");
    let r = a(c.post(format!("{api}/user")))
        .json(&nopw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // `.json` suffix and `latest` alias; attributes expand.
    let u: Value = a(c.get(format!(
        "{}/rest/usermanagement/latest/user.json?username=zoe&expand=attributes",
        emu.base_url()
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(u["name"], "Zoe");
    assert_eq!(u["attributes"]["attributes"][0]["values"][0], "0f3c-1");
    assert!(u["key"].as_str().unwrap().starts_with("32769:"));
    // The rejected (401) request is counted too.
    assert_eq!(emu.stats().get("GET /rest/usermanagement/1/user"), 2);

    // PUT with a mismatching name -> 400 ILLEGAL_ARGUMENT; with the same name (other case) -> 204.
    let r = a(c.put(format!("{api}/user?username=zoe")))
        .json(&json!({"name":"other","active":false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reason"],
        "ILLEGAL_ARGUMENT"
    );
    let r = a(c.put(format!("{api}/user?username=zoe")))
        .json(&json!({"name":"ZOE","active":false,"email":"z@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!emu.handle().user("zoe").unwrap().active);

    // Attributes: POST stores (204), PUT is not the API (405), DELETE removes.
    let r = a(c.post(format!("{api}/user/attribute?username=zoe")))
        .json(&json!({"attributes":[{"name":"dept","values":["R&D"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a(c.put(format!("{api}/user/attribute?username=zoe")))
        .json(&json!({"attributes":[]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = a(c.delete(format!(
        "{api}/user/attribute?username=zoe&attributename=dept"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        emu.handle()
            .user("zoe")
            .unwrap()
            .attributes
            .keys()
            .collect::<Vec<_>>(),
        vec!["entraObjectId"]
    );

    // Rename with {"new-name"}.
    let r = a(c.post(format!("{api}/user/rename?username=zoe")))
        .json(&json!({"new-name":"zoe.new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "zoe.new");
    let r = a(c.post(format!("{api}/user/rename?username=zoe.new")))
        .json(&json!({"newName":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Missing query parameter -> 400 ILLEGAL_ARGUMENT.
    let r = a(c.delete(format!("{api}/user"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "username query parameter must be given"
    );
    let r = a(c.delete(format!("{api}/user?username=zoe.new")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a(c.delete(format!("{api}/user?username=zoe.new")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "USER_NOT_FOUND");
    emu.shutdown().await;
}

#[tokio::test]
async fn groups_memberships_search_xml() {
    let (emu, c, api) = crowd().await;
    for n in ["amy", "ben", "cal"] {
        a(c.post(format!("{api}/user")))
            .json(&user_body(n))
            .send()
            .await
            .unwrap();
    }
    let r = a(c.post(format!("{api}/group")))
        .json(&json!({"name":"Ops","type":"GROUP","description":"d","active":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // PUT /group answers 200 with the body.
    let r = a(c.put(format!("{api}/group?groupname=ops")))
        .json(&json!({"name":"OPS","type":"GROUP","description":"new","active":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["description"], "new");

    let r = a(c.post(format!("{api}/group/user/direct?groupname=ops")))
        .json(&json!({"name":"AMY"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = a(c.post(format!("{api}/group/user/direct?groupname=ops")))
        .json(&json!({"name":"amy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Missing *other* entity (user in body) -> 400; missing URL entity (group) -> 404.
    let r = a(c.post(format!("{api}/group/user/direct?groupname=ops")))
        .json(&json!({"name":"ghost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "USER_NOT_FOUND");
    let r = a(c.post(format!("{api}/group/user/direct?groupname=nogroup")))
        .json(&json!({"name":"amy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = a(c.post(format!("{api}/user/group/direct?username=ben")))
        .json(&json!({"name":"nogroup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reason"],
        "GROUP_NOT_FOUND"
    );
    let r = a(c.post(format!("{api}/user/group/direct?username=ben")))
        .json(&json!({"name":"ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let m: Value = a(c.get(format!("{api}/group/user/direct?groupname=ops")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["expand"], "user");
    assert_eq!(
        m["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["amy", "ben"]
    );
    assert!(
        m["users"][0].get("email").is_none(),
        "without expand=user only name+link"
    );
    let m: Value = a(c.get(format!(
        "{api}/group/user/direct?groupname=ops&expand=user&max-results=1&start-index=1"
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(m["users"].as_array().unwrap().len(), 1);
    assert_eq!(m["users"][0]["email"], "ben@example.com");
    let r = a(c.get(format!(
        "{api}/group/user/direct?groupname=ops&username=cal"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let g: Value = a(c.get(format!("{api}/user/group/direct.json?username=amy")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(g["groups"][0]["name"], "Ops");

    // Search: CQL GET and restriction POST; no total, start-index/max-results.
    let s: Value = a(c.get(format!("{api}/search")))
        .query(&[
            ("entity-type", "user"),
            ("restriction", "email=\"ben@example.com\""),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["users"].as_array().unwrap().len(), 1);
    assert!(s.get("total").is_none());
    let s: Value = a(c.post(format!(
        "{api}/search?entity-type=user&start-index=1&max-results=10&expand=user"
    )))
    .json(&json!({}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(s["users"].as_array().unwrap().len(), 2);
    let s: Value = a(c.post(format!("{api}/search?entity-type=user")))
        .json(&json!({"restriction-type":"property-search-restriction","property":{"name":"name","type":"STRING"},"match-mode":"STARTS_WITH","value":"c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["users"][0]["name"], "cal");

    // Bulk membership read is XML.
    let r = a(c.get(format!("{api}/group/membership")))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let x = r.text().await.unwrap();
    assert!(
        x.contains(
            r#"<membership group="Ops"><users><user name="amy"/><user name="ben"/></users>"#
        ),
        "{x}"
    );

    let r = a(c.delete(format!(
        "{api}/group/user/direct?groupname=ops&username=amy"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = a(c.delete(format!(
        "{api}/group/user/direct?groupname=ops&username=amy"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reason"],
        "MEMBERSHIP_NOT_FOUND"
    );
    let r = a(c.delete(format!("{api}/group?groupname=OPS")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(emu.handle().group("ops").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn xml_by_default_and_address_allow_list() {
    let (emu, c, api) = crowd().await;
    a(c.post(format!("{api}/user")))
        .json(&user_body("xena"))
        .send()
        .await
        .unwrap();
    // No JSON in Accept -> Crowd's first declared type, XML.
    let r = c
        .get(format!("{api}/user?username=xena&expand=attributes"))
        .basic_auth("usersync", Some("usersync"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let x = r.text().await.unwrap();
    assert!(
        x.contains(r#"<user expand="attributes" name="xena">"#),
        "{x}"
    );
    assert!(x.contains("<display-name>xena D</display-name><email>xena@example.com</email><password><link rel=\"edit\""), "{x}");
    assert!(x.contains(r#"<attribute name="entraObjectId">"#), "{x}");
    assert!(x.contains("<values><value>0f3c-1</value></values>"), "{x}");
    // `.xml` suffix, list shape and errors in XML.
    let x = c
        .get(format!("{api}/search.xml?entity-type=user"))
        .basic_auth("usersync", Some("usersync"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        x.contains(r#"<users expand="user"><user name="xena">"#),
        "{x}"
    );
    let r = c
        .get(format!("{api}/user?username=nobody"))
        .basic_auth("usersync", Some("usersync"))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let x = r.text().await.unwrap();
    assert!(x.contains("<error><reason>USER_NOT_FOUND</reason><message>User &lt;nobody&gt; does not exist</message></error>"), "{x}");
    // XML request bodies are not accepted by the emulator.
    let r = a(c.post(format!("{api}/user")))
        .header("content-type", "application/xml")
        .body("<user/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Calling from an address outside the allow-list -> 403 HTML naming the application.
    emu.handle()
        .set_crowd_allowed_addresses(vec!["10.1.2.3".parse().unwrap()]);
    let r = a(c.get(format!("{api}/user?username=xena")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is forbidden from making requests to the application, usersync.")
    );
    // Wrong credentials are still 401 first.
    let r = c
        .get(format!("{api}/user?username=xena"))
        .basic_auth("usersync", Some("bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    emu.shutdown().await;
}
