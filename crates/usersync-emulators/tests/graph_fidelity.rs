//! Places where the Graph emulator used to be kinder than Microsoft Graph (issue 11 items
//! 1–7, issue 7 item 24). Each expectation cites the documentation it follows.

mod graph_support;

use std::collections::HashSet;

use graph_support::*;
use usersync_emulators::graph::{GraphConfig, GraphEmulator, GroupFields};

fn ids_of(v: &serde_json::Value) -> HashSet<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// Item 1: ~2,000 nested parentheses (a 4 KB URL) used to overflow the stack and kill the
/// process; now a 400 and the emulator keeps serving.
#[tokio::test]
async fn deeply_nested_filter_is_a_400_not_a_crash() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let f = format!("{}id eq 'x'{}", "(".repeat(2000), ")".repeat(2000));
    let (st, _, v) = get(&format!("{g}/users?$filter={f}"), &tok).await;
    assert_eq!(st, 400, "{v}");
    assert!(error_code(&v).contains("BadRequest"), "{v}");
    // A long flat chain is refused too (bounded evaluation depth).
    let chain = vec!["id eq 'x'"; 1500].join(" or ");
    let (st, _, _) = get(&format!("{g}/users?$filter={chain}"), &tok).await;
    assert_eq!(st, 400);
    // Still alive; moderate nesting still works.
    let f = format!("{}accountEnabled eq true{}", "(".repeat(20), ")".repeat(20));
    let (st, _, v) = get(&format!("{g}/users?$filter={f}"), &tok).await;
    assert_eq!(st, 200, "{v}");
    emu.shutdown().await;
}

/// Items 2 and 4 and issue 7 item 24: `graph.` alias casts, member counts, `$expand` with a
/// nested `$select`, `$search` on members, and the advanced-query requirement of casts on
/// transitive lists.
#[tokio::test]
async fn member_casts_counts_expand_and_search() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let leaf = t
        .add_group(GroupFields {
            display_name: Some("leaf".into()),
            members: Some(vec![ids[0].clone(), ids[1].clone()]),
            ..Default::default()
        })
        .unwrap();
    let top = t
        .add_group(GroupFields {
            display_name: Some("top".into()),
            members: Some(vec![leaf.clone(), ids[2].clone()]),
            ..Default::default()
        })
        .unwrap();
    // Issue 7 item 24: a cast on transitiveMembers needs ConsistencyLevel + $count=true
    // (group-list-transitivemembers, aad-advanced-queries).
    let url = format!("{g}/groups/{top}/transitiveMembers/microsoft.graph.user");
    let (st, _, v) = get(&url, &tok).await;
    assert_eq!(
        (st, error_code(&v).as_str()),
        (400, "Request_UnsupportedQuery")
    );
    let (st, _, v) = get_h(&url, &tok, EVENTUAL).await;
    assert_eq!(st, 400, "header without $count: {v}");
    let (st, _, v) = get(&format!("{url}?$count=true"), &tok).await;
    assert_eq!(st, 400, "$count without header: {v}");
    let (st, _, v) = get_h(&format!("{url}?$count=true"), &tok, EVENTUAL).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["@odata.count"], 3);
    // A cast on direct members works by default.
    let (st, _, v) = get(
        &format!("{g}/groups/{top}/members/microsoft.graph.user"),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids_of(&v), HashSet::from([ids[2].clone()]));
    // Item 2: the `graph.` alias the SDKs send.
    let (st, _, v) = get_h(
        &format!("{g}/groups/{top}/transitiveMembers/graph.user?$count=true"),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let (st, _, v) = get(&format!("{g}/users/{}/memberOf/graph.group", ids[0]), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert!(ids_of(&v).contains(&leaf));
    let (st, _, v) = get_h(
        &format!(
            "{g}/users/{}/transitiveMemberOf/microsoft.graph.group?$count=true",
            ids[0]
        ),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(ids_of(&v).contains(&leaf) && ids_of(&v).contains(&top));
    // Item 4: /members/$count (needs the header) and members?$count=true.
    let count_url = format!("{g}/groups/{top}/members/$count");
    let (st, _, v) = get(&count_url, &tok).await;
    assert_eq!((st, error_code(&v).as_str()), (400, "Request_BadRequest"));
    let r = client()
        .get(&count_url)
        .bearer_auth(&tok)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "2");
    let (st, _, v) = get_h(
        &format!("{g}/groups/{top}/transitiveMembers?$count=true"),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["@odata.count"], 4, "leaf + 3 users: {v}");
    // $expand=members($select=id): members with only ids (and the type annotation).
    let (st, _, v) = get(
        &format!("{g}/groups/{top}?$expand=members($select=id)"),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        let keys: HashSet<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys.iter().all(|k| *k == "id" || k.starts_with("@odata")),
            "{m}"
        );
    }
    let (st, _, v) = get(
        &format!("{g}/groups?$filter=id eq '{top}'&$expand=members($select=id,displayName)"),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["value"][0]["members"].as_array().unwrap().len(), 2);
    // $search on members: filtered by displayName, header required.
    let (st, _, _) = get(
        &format!("{g}/groups/{top}/transitiveMembers?$search=\"displayName:leaf\""),
        &tok,
    )
    .await;
    assert_eq!(st, 400);
    let (st, _, v) = get_h(
        &format!("{g}/groups/{top}/transitiveMembers?$search=\"displayName:leaf\""),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids_of(&v), HashSet::from([leaf.clone()]));
    emu.shutdown().await;
}

/// Item 3: the advanced-query table of
/// <https://learn.microsoft.com/graph/aad-advanced-queries>.
#[tokio::test]
async fn advanced_query_rules_follow_the_table() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let adv = |q: &str| format!("{g}/users?{q}&$count=true");
    // $filter + $orderby: advanced only.
    let q = "$filter=startswith(displayName,'a')&$orderby=displayName";
    let (st, _, v) = get(&format!("{g}/users?{q}"), &tok).await;
    assert_eq!(
        (st, error_code(&v).as_str()),
        (400, "Request_UnsupportedQuery")
    );
    let (st, _, v) = get_h(&adv(q), &tok, EVENTUAL).await;
    assert_eq!(st, 200, "{v}");
    // Properties the table marks advanced-only.
    for q in [
        "$filter=onPremisesSamAccountName eq 'x'",
        "$filter=employeeId eq null",
    ] {
        let (st, _, v) = get(&format!("{g}/users?{q}"), &tok).await;
        assert_eq!(
            (st, error_code(&v).as_str()),
            (400, "Request_UnsupportedQuery"),
            "{q}"
        );
        let (st, _, v) = get_h(&adv(q), &tok, EVENTUAL).await;
        assert_eq!(st, 200, "{q}: {v}");
    }
    // ge/le where the table says "default" (createdDateTime), refused where it is blank.
    let (st, _, v) = get(
        &format!("{g}/users?$filter=createdDateTime ge 2000-01-01T00:00:00Z"),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 50);
    let (st, _, v) = get(
        &format!("{g}/users?$filter=createdDateTime le 2000-01-01T00:00:00Z"),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["value"].as_array().unwrap().is_empty());
    let (st, _, _) = get_h(&adv("$filter=displayName ge 'a'"), &tok, EVENTUAL).await;
    assert_eq!(st, 400);
    // Groups: ge on createdDateTime is not indexed (the doc's example error).
    let (st, _, v) = get_h(
        &format!("{g}/groups?$filter=createdDateTime ge 2021-11-01T00:00:00Z&$count=true"),
        &tok,
        EVENTUAL,
    )
    .await;
    assert_eq!(st, 400, "{v}");
    // $count=true without the header: ignored, not refused.
    let (st, _, v) = get(&format!("{g}/users?$count=true&$top=5"), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("@odata.count").is_none());
    // /users/$count without the header: the documented Request_BadRequest.
    let (st, _, v) = get(&format!("{g}/users/$count"), &tok).await;
    assert_eq!((st, error_code(&v).as_str()), (400, "Request_BadRequest"));
    assert_eq!(v["error"]["message"], "$count is not currently supported.");
    emu.shutdown().await;
}

/// Item 5: photo sizes up to the uploaded size, and the 200 placeholder for no photo.
#[tokio::test]
async fn photo_sizes_and_no_photo_placeholder() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let with = ids
        .iter()
        .find(|i| t.user_has_photo(i) == Some(true))
        .unwrap();
    let without = ids
        .iter()
        .find(|i| t.user_has_photo(i) == Some(false))
        .unwrap();
    for sz in ["48x48", "64x64", "96x96"] {
        let (st, _, v) = get(&format!("{g}/users/{with}/photos/{sz}"), &tok).await;
        assert_eq!(st, 200, "{sz}: {v}");
        assert_eq!(v["id"], sz);
        let r = client()
            .get(format!("{g}/users/{with}/photos/{sz}/$value"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{sz}");
        let bytes = r.bytes().await.unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        let px: u32 = sz.split('x').next().unwrap().parse().unwrap();
        assert_eq!((img.width(), img.height()), (px, px));
    }
    // Larger than the upload: not available.
    let (st, _, _) = get(&format!("{g}/users/{with}/photos/648x648/$value"), &tok).await;
    assert_eq!(st, 404);
    let (_, _, v) = get(&format!("{g}/users/{with}/photos"), &tok).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    // No photo: metadata is the 1x1 GIF placeholder with an empty ETag; $value is 404.
    let (st, _, v) = get(&format!("{g}/users/{without}/photo"), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["@odata.mediaContentType"], "image/gif");
    assert_eq!(v["@odata.mediaEtag"], "");
    assert!(v["id"].as_str().unwrap().eq_ignore_ascii_case("1x1"));
    let (st, _, _) = get(&format!("{g}/users/{without}/photo/$value"), &tok).await;
    assert_eq!(st, 404);
    emu.shutdown().await;
}

/// Item 6: security groups are deleted permanently; a restored user gets its memberships back.
#[tokio::test]
async fn security_groups_delete_permanently_and_restore_keeps_memberships() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let sec = t
        .add_group(GroupFields {
            display_name: Some("sec".into()),
            security_enabled: Some(true),
            members: Some(vec![ids[0].clone()]),
            ..Default::default()
        })
        .unwrap();
    let m365 = t
        .add_group(GroupFields {
            display_name: Some("m365".into()),
            mail_enabled: Some(true),
            security_enabled: Some(false),
            group_types: Some(vec!["Unified".into()]),
            members: Some(vec![ids[0].clone()]),
            ..Default::default()
        })
        .unwrap();
    // Restore of a user: memberships come back.
    t.delete_user(&ids[0], false).unwrap();
    assert!(!t.group_member_ids(&sec).unwrap().contains(&ids[0]));
    t.restore_user(&ids[0]).unwrap();
    assert!(t.group_member_ids(&sec).unwrap().contains(&ids[0]));
    assert!(t.group_member_ids(&m365).unwrap().contains(&ids[0]));
    let (_, _, v) = get(&format!("{g}/users/{}/memberOf", ids[0]), &tok).await;
    assert!(
        ids_of(&v).contains(&sec) && ids_of(&v).contains(&m365),
        "{v}"
    );
    // Group delta: a deleted security group is "deleted", an M365 group "changed".
    let (_, _, first) = get(&format!("{g}/groups/delta?$select=id"), &tok).await;
    let mut link = first["@odata.deltaLink"].as_str().map(str::to_string);
    let mut next = first["@odata.nextLink"].as_str().map(str::to_string);
    while let Some(n) = next {
        let (_, _, v) = get(&n, &tok).await;
        link = v["@odata.deltaLink"].as_str().map(str::to_string);
        next = v["@odata.nextLink"].as_str().map(str::to_string);
    }
    t.delete_group(&sec, false).unwrap();
    t.delete_group(&m365, false).unwrap();
    assert!(
        t.restore_group(&sec).is_err(),
        "security groups cannot be restored"
    );
    let (_, _, v) = get(&link.unwrap(), &tok).await;
    let reason = |id: &str| {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| x["@removed"]["reason"].clone())
    };
    assert_eq!(reason(&sec), Some(serde_json::json!("deleted")), "{v}");
    assert_eq!(reason(&m365), Some(serde_json::json!("changed")), "{v}");
    emu.shutdown().await;
}

/// Item 7: MSAL's `organizations` authority reads this document.
#[tokio::test]
async fn organizations_openid_configuration() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    for alias in ["organizations", "common"] {
        let r = client()
            .get(format!(
                "{}/{alias}/v2.0/.well-known/openid-configuration",
                emu.login_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{alias}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            v["issuer"],
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        );
        assert!(
            v["token_endpoint"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{alias}/oauth2/v2.0/token"))
        );
    }
    emu.shutdown().await;
}
