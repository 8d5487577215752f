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

/// A Crowd test client: the application's Basic credentials and JSON.
struct Crowd {
    c: Client,
    api: String,
}

impl Crowd {
    fn new(emu: &AtlassianEmulator, c: Client) -> Self {
        Crowd {
            c,
            api: format!("{}/rest/usermanagement/1", emu.base_url()),
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = r
            .basic_auth("usersync", Some("usersync"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.c.get(format!("{}{path}", self.api))).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.c.post(format!("{}{path}", self.api)).json(&body))
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.c.delete(format!("{}{path}", self.api)))
            .await
    }

    async fn user(&self, name: &str, first: &str, last: &str, active: bool) {
        let (st, v) = self
            .post(
                "/user",
                json!({"name": name, "first-name": first, "last-name": last,
                    "display-name": format!("{first} {last}"), "email": format!("{name}@example.com"),
                    "password": {"value": "pw"}, "active": active}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }

    async fn group(&self, name: &str) {
        let (st, v) = self
            .post(
                "/group",
                json!({"name": name, "type": "GROUP", "active": true}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }

    fn names(v: &Value, list: &str) -> Vec<String> {
        let mut n: Vec<String> = v[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list} in {v}"))
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    }
}

/// Item 8: Crowd nested groups — child and parent groups, direct and nested, adding and
/// removing a child group, and nested user/group memberships (Crowd REST resources, "Group -
/// Direct/Nested Child Groups", "Group - Direct/Nested Parent Groups"). All of these were 404.
#[tokio::test]
async fn crowd_nested_groups() {
    let (emu, c) = start(Product::Crowd).await;
    let cr = Crowd::new(&emu, c);
    for g in ["eng", "backend", "db", "ops"] {
        cr.group(g).await;
    }
    cr.user("ann", "Ann", "A", true).await;
    cr.user("dan", "Dan", "D", true).await;
    for (g, u) in [("eng", "ann"), ("db", "dan")] {
        let (st, v) = cr
            .post(
                &format!("/group/user/direct?groupname={g}"),
                json!({"name": u}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    // eng > backend > db, built once from each side.
    let (st, v) = cr
        .post(
            "/group/child-group/direct?groupname=eng",
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = cr
        .post(
            "/group/parent-group/direct?groupname=db",
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Refusals, with Crowd's ErrorEntity.
    let (st, v) = cr
        .post(
            "/group/child-group/direct?groupname=eng",
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::CONFLICT, Some("MEMBERSHIP_ALREADY_EXISTS"))
    );
    let (st, v) = cr
        .post(
            "/group/child-group/direct?groupname=eng",
            json!({"name": "nope"}),
        )
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("GROUP_NOT_FOUND"))
    );
    let (st, v) = cr
        .post(
            "/group/child-group/direct?groupname=nope",
            json!({"name": "eng"}),
        )
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("GROUP_NOT_FOUND"))
    );
    let (st, v) = cr
        .post(
            "/group/child-group/direct?groupname=eng",
            json!({"name": "ENG"}),
        )
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_MEMBERSHIP"))
    );

    // Direct and nested listings.
    let (st, v) = cr.get("/group/child-group/direct?groupname=eng").await;
    assert_eq!(
        (st, Crowd::names(&v, "groups")),
        (StatusCode::OK, vec!["backend".to_string()])
    );
    let (_, v) = cr.get("/group/child-group/nested?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "groups"), ["backend", "db"]);
    let (_, v) = cr.get("/group/parent-group/direct?groupname=db").await;
    assert_eq!(Crowd::names(&v, "groups"), ["backend"]);
    let (_, v) = cr.get("/group/parent-group/nested?groupname=db").await;
    assert_eq!(Crowd::names(&v, "groups"), ["backend", "eng"]);
    let (_, v) = cr
        .get("/group/child-group/direct?groupname=eng&max-results=0")
        .await;
    assert_eq!(Crowd::names(&v, "groups"), Vec::<String>::new());
    let (st, v) = cr
        .get("/group/child-group/direct?groupname=eng&child-groupname=BACKEND")
        .await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("backend")));
    let (st, v) = cr
        .get("/group/child-group/direct?groupname=eng&child-groupname=db")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("MEMBERSHIP_NOT_FOUND"))
    );
    let (st, _) = cr
        .get("/group/child-group/nested?groupname=eng&child-groupname=db")
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = cr.get("/group/child-group/direct?groupname=nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Nested users of a group and nested groups of a user; direct stays direct.
    let (_, v) = cr.get("/group/user/nested?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "users"), ["ann", "dan"]);
    let (_, v) = cr.get("/group/user/direct?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "users"), ["ann"]);
    let (st, _) = cr
        .get("/group/user/nested?groupname=eng&username=dan")
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = cr.get("/user/group/nested?username=dan").await;
    assert_eq!(Crowd::names(&v, "groups"), ["backend", "db", "eng"]);
    let (_, v) = cr.get("/user/group/direct?username=dan").await;
    assert_eq!(Crowd::names(&v, "groups"), ["db"]);

    // A cycle is accepted and the nested queries still end.
    let (st, _) = cr
        .post(
            "/group/child-group/direct?groupname=db",
            json!({"name": "eng"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, v) = cr.get("/group/child-group/nested?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "groups"), ["backend", "db", "eng"]);

    // Removing a child group.
    let (st, _) = cr
        .delete("/group/child-group/direct?groupname=eng&child-groupname=backend")
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = cr
        .delete("/group/child-group/direct?groupname=eng&child-groupname=backend")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("MEMBERSHIP_NOT_FOUND"))
    );
    let (_, v) = cr.get("/group/user/nested?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "users"), ["ann"]);
    // Deleting a group drops its edges.
    let (st, _) = cr.delete("/group?groupname=db").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = cr.get("/group/parent-group/direct?groupname=eng").await;
    assert_eq!(Crowd::names(&v, "groups"), Vec::<String>::new());
    emu.shutdown().await;
}

/// Item 8: CQL `or`, parentheses and quoted values, and the JSON `boolean-search-restriction`
/// of `POST /search` (all were refused with 400), plus what Crowd refuses (malformed CQL,
/// unknown restriction types, match modes and boolean logic) with its ErrorEntity.
#[tokio::test]
async fn crowd_cql_or_parentheses_and_boolean_restrictions() {
    let (emu, c) = start(Product::Crowd).await;
    let cr = Crowd::new(&emu, c);
    cr.user("jo.smith", "Jo", "Smith", true).await;
    cr.user("ann.jones", "Ann", "Jones", true).await;
    cr.user("bob.jones", "Bob", "Jones", false).await;
    cr.user("jon.brown", "Jon", "Brown", true).await;
    let q = |cql: &str| {
        format!(
            "/search?entity-type=user&restriction={}",
            percent_encode(cql)
        )
    };
    let cases: [(&str, &[&str]); 6] = [
        (
            "lastName = Smith or lastName = Jones",
            &["ann.jones", "bob.jones", "jo.smith"],
        ),
        (
            "(lastName = Smith or lastName = Jones) and active = true",
            &["ann.jones", "jo.smith"],
        ),
        (
            "lastName = Jones and active = false or firstName = Jo*",
            &["bob.jones", "jo.smith", "jon.brown"],
        ),
        ("displayName = \"Ann Jones\"", &["ann.jones"]),
        (
            "email = *@example.com and (name = jo* or (name = bob* and active = false))",
            &["bob.jones", "jo.smith", "jon.brown"],
        ),
        (
            "name = \"*jones\" OR name = nobody",
            &["ann.jones", "bob.jones"],
        ),
    ];
    for (cql, want) in cases {
        let (st, v) = cr.get(&q(cql)).await;
        assert_eq!(st, StatusCode::OK, "{cql}: {v}");
        assert_eq!(Crowd::names(&v, "users"), want, "{cql}");
    }
    let deep = format!("{}name = x{}", "(".repeat(200), ")".repeat(200));
    for bad in [
        "(lastName = Smith",
        "lastName = Smith)",
        "lastName = Smith or",
        "and name = x",
        "lastName Smith",
        "name = \"unterminated",
        "createdDate > 2010-12",
        deep.as_str(),
    ] {
        let (st, v) = cr.get(&q(bad)).await;
        assert_eq!(
            (st, v["reason"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ILLEGAL_ARGUMENT")),
            "{bad}: {v}"
        );
    }

    let prop = |name: &str, mode: &str, value: &str| {
        json!({"restriction-type": "property-search-restriction",
            "property": {"name": name, "type": "STRING"}, "match-mode": mode, "value": value})
    };
    let body = json!({"restriction-type": "boolean-search-restriction", "boolean-logic": "or",
    "restrictions": [
        prop("lastName", "EXACTLY_MATCHES", "Smith"),
        {"restriction-type": "boolean-search-restriction", "boolean-logic": "and",
         "restrictions": [prop("lastName", "EXACTLY_MATCHES", "Jones"),
                          {"restriction-type": "property-search-restriction",
                           "property": {"name": "active", "type": "BOOLEAN"},
                           "match-mode": "EXACTLY_MATCHES", "value": "false"}]}
    ]});
    let (st, v) = cr.post("/search?entity-type=user", body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(Crowd::names(&v, "users"), ["bob.jones", "jo.smith"]);
    let (_, v) = cr
        .post(
            "/search?entity-type=user",
            prop("name", "ENDS_WITH", ".jones"),
        )
        .await;
    assert_eq!(Crowd::names(&v, "users"), ["ann.jones", "bob.jones"]);
    for bad in [
        json!({"restriction-type": "boolean-search-restriction", "boolean-logic": "xor", "restrictions": []}),
        json!({"restriction-type": "boolean-search-restriction", "boolean-logic": "and"}),
        json!({"restriction-type": "fuzzy-search-restriction"}),
        prop("name", "SOUNDS_LIKE", "jo"),
        json!({"property": {"name": "name"}, "value": "jo.smith"}),
    ] {
        let (st, v) = cr.post("/search?entity-type=user", bad.clone()).await;
        assert_eq!(
            (st, v["reason"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ILLEGAL_ARGUMENT")),
            "{bad}: {v}"
        );
    }
    emu.shutdown().await;
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Item 9: Jira `GET /user?includeDeleted=true` finds a deleted user (and only with the flag);
/// a live user who reuses the name wins.
#[tokio::test]
async fn jira_include_deleted_shows_deleted_users_only_when_asked() {
    let (emu, c) = start(Product::Jira).await;
    let api = format!("{}/rest/api/2", emu.base_url());
    let a = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some("admin"));
    let create = |name: &'static str| {
        a(c.post(format!("{api}/user")))
            .json(
                &json!({"name": name, "emailAddress": format!("{name}@example.com"),
                "displayName": "Leaver", "password": "pw"}),
            )
            .send()
    };
    let v: Value = create("leaver").await.unwrap().json().await.unwrap();
    let key = v["key"].as_str().unwrap().to_string();
    let r = a(c.delete(format!("{api}/user?username=leaver")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for q in ["username=leaver", "username=leaver&includeDeleted=false"] {
        let r = a(c.get(format!("{api}/user?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{q}");
    }
    for q in [
        "username=LEAVER&includeDeleted=true".to_string(),
        format!("key={key}&includeDeleted=true"),
    ] {
        let r = a(c.get(format!("{api}/user?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{q}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (
                v["key"].as_str(),
                v["deleted"].as_bool(),
                v["active"].as_bool()
            ),
            (Some(key.as_str()), Some(true), Some(false)),
            "{q}: {v}"
        );
    }
    let r = a(c.get(format!("{api}/user?username=nobody&includeDeleted=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The name reused: the live account is returned, deleted or not asked.
    let v: Value = create("leaver").await.unwrap().json().await.unwrap();
    let r = a(c.get(format!("{api}/user?username=leaver&includeDeleted=true")))
        .send()
        .await
        .unwrap();
    let live: Value = r.json().await.unwrap();
    assert_eq!(live["key"], v["key"]);
    assert_eq!(live["deleted"], json!(false));
    emu.shutdown().await;
}

/// Item 9: Bitbucket adds `avatarUrl` to users only when `avatarSize` is given.
#[tokio::test]
async fn bitbucket_avatar_url_only_with_avatar_size() {
    let (emu, c) = start(Product::Bitbucket).await;
    let api = format!("{}/rest/api/1.0", emu.base_url());
    let get = |path: String| {
        let c = c.clone();
        async move {
            let r = c
                .get(path)
                .basic_auth("admin", Some("admin"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    let v = get(format!("{api}/users")).await;
    assert!(v["values"][0].get("avatarUrl").is_none(), "{v}");
    let v = get(format!("{api}/users?avatarSize=64")).await;
    let url = v["values"][0]["avatarUrl"].as_str().unwrap_or_default();
    assert!(url.contains("avatar.png?s=64"), "{v}");
    let v = get(format!("{api}/users/admin")).await;
    assert!(v.get("avatarUrl").is_none(), "{v}");
    let v = get(format!("{api}/users/admin?avatarSize=48")).await;
    assert!(
        v["avatarUrl"].as_str().unwrap_or_default().contains("s=48"),
        "{v}"
    );
    let v = get(format!("{api}/admin/users?avatarSize=32")).await;
    assert!(v["values"][0]["avatarUrl"].is_string(), "{v}");
    let v = get(format!("{api}/admin/users")).await;
    assert!(v["values"][0].get("avatarUrl").is_none(), "{v}");
    emu.shutdown().await;
}
