//! Users, groups, members, photos: paging, $select, $top, $filter, $count, errors.

mod graph_support;

use std::collections::HashSet;

use graph_support::*;
use usersync_emulators::graph::{GraphConfig, GraphEmulator, TenantSize, UserFields};

#[tokio::test]
async fn pages_through_all_users_with_absolute_next_links() {
    let emu = GraphEmulator::start(GraphConfig::sized(TenantSize::S, 7))
        .await
        .unwrap();
    let tok = token(&emu).await;
    let (items, last, pages) = collect(
        &format!(
            "{}/users?$select=id,userPrincipalName&$top=300",
            emu.graph_url()
        ),
        &tok,
    )
    .await;
    assert_eq!(items.len(), 1000);
    assert_eq!(pages, 4);
    assert!(last.get("@odata.nextLink").is_none());
    let ids: HashSet<&str> = items.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1000);
    // nextLink: absolute, built from the request host, carries the query options.
    let (_, _, first) = get(
        &format!("{}/users?$top=5&$select=displayName", emu.graph_url()),
        &tok,
    )
    .await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/users?", emu.graph_url())),
        "{next}"
    );
    assert!(
        next.contains("$top=5") && next.contains("$skiptoken="),
        "{next}"
    );
    assert_eq!(
        first["@odata.context"],
        format!("{}/$metadata#users(displayName)", emu.graph_url())
    );
    assert_eq!(emu.stats().get("users"), 5);
    emu.shutdown().await;
}

#[tokio::test]
async fn select_default_properties_and_top_limits() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let (st, _, v) = get(&format!("{g}/users"), &tok).await;
    assert_eq!(st, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 50);
    let u = v["value"][0].as_object().unwrap();
    for k in [
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    ] {
        assert!(u.contains_key(k), "default property {k} missing");
    }
    assert!(!u.contains_key("accountEnabled") && !u.contains_key("onPremisesSamAccountName"));
    let (_, _, v) = get(
        &format!("{g}/users?$select=accountEnabled,userType,employeeId"),
        &tok,
    )
    .await;
    let u = v["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = u.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["accountEnabled", "employeeId", "id", "userType"]);
    for (top, ok) in [("999", true), ("1000", false), ("0", false), ("abc", false)] {
        let (st, _, v) = get(&format!("{g}/users?$top={top}"), &tok).await;
        assert_eq!(st == 200, ok, "$top={top}: {v}");
        if !ok {
            assert_eq!(st, 400);
            error_code(&v);
        }
    }
    let (st, _, v) = get(&format!("{g}/users?$top=1000"), &tok).await;
    assert_eq!(st, 400);
    assert_eq!(
        v["error"]["message"],
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    let (st, _, v) = get(&format!("{g}/users?$select=nope"), &tok).await;
    assert_eq!((st, error_code(&v).as_str()), (400, "BadRequest"));
    let (st, _, _) = get(&format!("{g}/users?$select=skills"), &tok).await;
    assert_eq!(st, 501);
    let (st, _, v) = get(&format!("{g}/users?$filter=displayName eq 'x"), &tok).await;
    assert_eq!(st, 400, "{v}");
    let (st, _, v) = get(&format!("{g}/users?$filter=endsWith(mail,'x.com')"), &tok).await;
    assert_eq!(
        (st, error_code(&v).as_str()),
        (400, "Request_UnsupportedQuery")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn filters_count_and_single_objects() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let f = format!("id in ('{}','{}')", ids[3], ids[7]);
    let (_, _, v) = get(&format!("{g}/users?$filter={f}"), &tok).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    let upn = t.user_upn(&ids[3]).unwrap();
    let (st, _, v) = get(&format!("{g}/users/{}", urlencode(&upn)), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], ids[3].as_str());
    let name = v["displayName"].as_str().unwrap().to_string();
    let (_, _, v) = get(
        &format!("{g}/users?$filter=displayName eq '{name}'&$select=displayName"),
        &tok,
    )
    .await;
    assert!(
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["displayName"] == name.as_str())
    );
    let prefix = &name[..2];
    let (_, _, v) = get(
        &format!("{g}/users?$filter=startswith(displayName,'{prefix}')"),
        &tok,
    )
    .await;
    assert!(!v["value"].as_array().unwrap().is_empty());
    let (_, _, v) = get(
        &format!("{g}/users?$filter=userType eq 'Guest'&$select=userPrincipalName,userType"),
        &tok,
    )
    .await;
    for u in v["value"].as_array().unwrap() {
        assert!(
            u["userPrincipalName"].as_str().unwrap().contains("#EXT#@"),
            "{u}"
        );
    }
    // $count=true without ConsistencyLevel: eventual is silently ignored (aad-advanced-queries).
    let (st, _, v) = get(&format!("{g}/users?$count=true"), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("@odata.count").is_none(), "{v}");
    let (st, _, v) = get_h(
        &format!("{g}/users?$count=true&$top=10"),
        &tok,
        &[("ConsistencyLevel", "eventual")],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["@odata.count"], 50);
    let r = client()
        .get(format!("{g}/users/$count"))
        .bearer_auth(&tok)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "50");
    let (st, h, v) = get_h(
        &format!("{g}/users/00000000-0000-0000-0000-000000000000"),
        &tok,
        &[("client-request-id", "abc-123")],
    )
    .await;
    assert_eq!(
        (st, error_code(&v).as_str()),
        (404, "Request_ResourceNotFound")
    );
    assert_eq!(h["client-request-id"], "abc-123");
    assert_eq!(v["error"]["innerError"]["client-request-id"], "abc-123");
    assert!(h.get("request-id").is_some());
    let (st, _, v) = get(&format!("{g}/nothing"), &tok).await;
    assert_eq!(st, 400, "{v}");
    emu.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.replace('#', "%23")
}

#[tokio::test]
async fn groups_members_transitive_and_cast() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let (_, _, v) = get(&format!("{g}/groups"), &tok).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 10);
    assert!(v["value"][0].get("securityEnabled").is_some());
    // Build a known nesting: top ⊃ mid ⊃ leaf, with users in each.
    let ids = t.user_ids();
    let leaf = t
        .add_group(usersync_emulators::graph::GroupFields {
            display_name: Some("leaf".into()),
            members: Some(vec![ids[0].clone(), ids[1].clone()]),
            ..Default::default()
        })
        .unwrap();
    let mid = t
        .add_group(usersync_emulators::graph::GroupFields {
            display_name: Some("mid".into()),
            members: Some(vec![leaf.clone(), ids[2].clone()]),
            ..Default::default()
        })
        .unwrap();
    let top = t
        .add_group(usersync_emulators::graph::GroupFields {
            display_name: Some("top".into()),
            members: Some(vec![mid.clone(), ids[0].clone()]),
            ..Default::default()
        })
        .unwrap();
    let (st, _, v) = get(
        &format!("{g}/groups/{top}/members?$select=id,displayName"),
        &tok,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        v["@odata.context"],
        format!("{g}/$metadata#directoryObjects(id,displayName)")
    );
    let types: HashSet<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        HashSet::from(["#microsoft.graph.user", "#microsoft.graph.group"])
    );
    let (items, _, _) = collect(&format!("{g}/groups/{top}/transitiveMembers?$top=2"), &tok).await;
    assert_eq!(items.len(), 5, "mid, leaf, 3 users: {items:?}");
    let items = collect_h(
        &format!("{g}/groups/{top}/transitiveMembers/microsoft.graph.user?$count=true"),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|m| m["@odata.type"] == "#microsoft.graph.user")
    );
    // Deep generated nesting (chain of 8) resolves.
    let chain0 = &t.group_ids()[0];
    let (st, _, v) = get_h(
        &format!(
            "{g}/groups/{chain0}/transitiveMembers/microsoft.graph.group?$top=999&$count=true"
        ),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 200);
    assert!(v["value"].as_array().unwrap().len() >= 7, "{v}");
    // memberOf
    let (_, _, v) = get(&format!("{g}/users/{}/transitiveMemberOf", ids[1]), &tok).await;
    let got: HashSet<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        got.contains(leaf.as_str()) && got.contains(mid.as_str()) && got.contains(top.as_str())
    );
    let s = emu.stats();
    assert_eq!(
        (
            s.get("members"),
            s.get("transitiveMembers"),
            s.get("memberOf")
        ),
        (1, 5, 1)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn photos() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let with = ids
        .iter()
        .find(|i| t.user_has_photo(i) == Some(true))
        .unwrap()
        .clone();
    let without = ids
        .iter()
        .find(|i| t.user_has_photo(i) == Some(false))
        .unwrap()
        .clone();
    let (st, _, v) = get(&format!("{g}/users/{with}/photo"), &tok).await;
    assert_eq!(st, 200);
    assert_eq!(v["@odata.mediaContentType"], "image/jpeg");
    let etag = v["@odata.mediaEtag"].as_str().unwrap().to_string();
    let r = client()
        .get(format!("{g}/users/{with}/photo/$value"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG SOI");
    let (st, _, v) = get(&format!("{g}/users/{without}/photo/$value"), &tok).await;
    assert_eq!((st, error_code(&v).as_str()), (404, "ImageNotFound"));
    // Photo change → new etag.
    t.set_photo(&with, true).unwrap();
    let (_, _, v) = get(&format!("{g}/users/{with}/photo"), &tok).await;
    assert_ne!(v["@odata.mediaEtag"].as_str().unwrap(), etag);
    let s = emu.stats();
    assert_eq!((s.get("photo"), s.get("photo.value")), (2, 2));
    // Disabled user still listed; accountEnabled false.
    t.update_user(
        &with,
        UserFields {
            account_enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let (_, _, v) = get(&format!("{g}/users/{with}?$select=accountEnabled"), &tok).await;
    assert_eq!(v["accountEnabled"], false);
    emu.shutdown().await;
}
