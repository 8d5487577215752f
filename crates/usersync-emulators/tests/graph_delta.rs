//! users/delta and groups/delta rounds, removals, membership deltas, token expiry and reset.

mod graph_support;

use std::collections::HashMap;

use graph_support::*;
use serde_json::Value;
use usersync_emulators::graph::{GraphConfig, GraphEmulator, GroupFields, TenantSize, UserFields};

#[tokio::test]
async fn user_delta_rounds() {
    let emu = GraphEmulator::start(GraphConfig::sized(TenantSize::S, 3))
        .await
        .unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let (items, last, pages) = collect(
        &format!("{g}/users/delta?$select=displayName,accountEnabled"),
        &tok,
    )
    .await;
    assert_eq!(items.len(), 1000);
    assert_eq!(pages, 10, "default delta page size 100");
    assert!(
        items
            .iter()
            .all(|u| u.get("@removed").is_none() && u.get("accountEnabled").is_some())
    );
    let delta = last["@odata.deltaLink"].as_str().unwrap().to_string();
    assert!(
        delta.starts_with(&format!("{g}/users/delta?$deltatoken=")),
        "{delta}"
    );
    // No changes → empty value + new deltaLink.
    let (_, _, v) = get(&delta, &tok).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    assert!(v["@odata.deltaLink"].is_string());
    // Changes: add, update, disable, soft delete, hard delete.
    let ids = t.user_ids();
    let new = t
        .add_user(UserFields {
            display_name: Some("New Person".into()),
            ..Default::default()
        })
        .unwrap();
    t.update_user(
        &ids[0],
        UserFields {
            display_name: Some("Renamed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    t.set_account_enabled(&ids[1], false).unwrap();
    t.delete_user(&ids[2], false).unwrap();
    t.delete_user(&ids[3], true).unwrap();
    t.set_photo(&ids[4], true).unwrap(); // photos are not tracked by delta
    let (items, last, _) = collect(&delta, &tok).await;
    let by_id: HashMap<&str, &Value> = items
        .iter()
        .map(|u| (u["id"].as_str().unwrap(), u))
        .collect();
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(by_id[new.as_str()]["displayName"], "New Person");
    assert_eq!(by_id[ids[0].as_str()]["displayName"], "Renamed");
    assert_eq!(by_id[ids[1].as_str()]["accountEnabled"], false);
    assert_eq!(by_id[ids[2].as_str()]["@removed"]["reason"], "changed");
    assert_eq!(by_id[ids[3].as_str()]["@removed"]["reason"], "deleted");
    // Restore → reappears without annotation.
    t.restore_user(&ids[2]).unwrap();
    let (items, _, _) = collect(last["@odata.deltaLink"].as_str().unwrap(), &tok).await;
    assert_eq!(items.len(), 1);
    assert!(items[0].get("@removed").is_none());
    // $deltatoken=latest → deltaLink, no data.
    let (_, _, v) = get(&format!("{g}/users/delta?$deltatoken=latest"), &tok).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    assert!(v["@odata.deltaLink"].is_string());
    // Long form of the function name works too.
    let (st, _, _) = get(
        &format!("{g}/users/microsoft.graph.delta()?$select=id"),
        &tok,
    )
    .await;
    assert_eq!(st, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn delta_token_expiry_and_reset() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let (_, last, _) = collect(&format!("{g}/users/delta?$select=displayName"), &tok).await;
    let delta = last["@odata.deltaLink"].as_str().unwrap().to_string();
    // Reset (tenant maintenance): 410 Gone + Location with an empty $deltatoken.
    t.invalidate_delta_tokens();
    let (st, h, v) = get(&delta, &tok).await;
    assert_eq!(st, 410, "{v}");
    assert_eq!(error_code(&v), "resyncRequired");
    let loc = h["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{g}/users/delta?")) && loc.ends_with("$deltatoken="),
        "{loc}"
    );
    // Following Location restarts a full sync with the same $select.
    let (items, last, _) = collect(&loc, &tok).await;
    assert_eq!(items.len(), 50);
    assert!(items[0].get("displayName").is_some() && items[0].get("userPrincipalName").is_none());
    // Expiry after 7 days: 400 syncStateNotFound.
    let fresh = last["@odata.deltaLink"].as_str().unwrap().to_string();
    let tok2 = {
        t.set_token_lifetime(30 * 86400);
        token(&emu).await
    };
    t.advance_clock(7 * 86400 + 10);
    let (st, _, v) = get(&fresh, &tok2).await;
    assert_eq!((st, error_code(&v).as_str()), (400, "syncStateNotFound"));
    let (st, _, v) = get(&format!("{g}/users/delta?$deltatoken=garbage"), &tok2).await;
    assert_eq!(st, 400, "{v}");
    // Only `id eq` filters (≤ 50) are supported on delta.
    let (st, _, v) = get(
        &format!("{g}/groups/delta?$filter=displayName eq 'x'"),
        &tok2,
    )
    .await;
    assert_eq!(
        (st, error_code(&v).as_str()),
        (400, "Request_UnsupportedQuery")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn group_delta_members_and_split() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let ids = t.user_ids();
    let big = t
        .add_group(GroupFields {
            display_name: Some("Big".into()),
            members: Some(ids[..40].to_vec()),
            ..Default::default()
        })
        .unwrap();
    t.set_delta_paging(100, 15);
    let (items, last, pages) = collect(
        &format!("{g}/groups/delta?$select=displayName,members"),
        &tok,
    )
    .await;
    // The big group appears on several pages, each with a slice of members@delta.
    let slices: Vec<&Value> = items.iter().filter(|x| x["id"] == big.as_str()).collect();
    assert!(slices.len() >= 3, "split over pages: {}", slices.len());
    assert!(pages >= 3);
    let mut members: Vec<&str> = slices
        .iter()
        .flat_map(|s| {
            s["members@delta"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap())
        })
        .collect();
    members.sort();
    let mut want: Vec<&str> = ids[..40].iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(members, want);
    for s in &slices {
        assert_eq!(s["displayName"], "Big");
        assert!(s["members@delta"].as_array().unwrap().len() <= 15);
    }
    let delta = last["@odata.deltaLink"].as_str().unwrap().to_string();
    // Membership changes and a deleted group.
    t.remove_member(&big, &ids[0]).unwrap();
    t.add_member(&big, &ids[45]).unwrap();
    let victim = t.group_ids()[1].clone();
    t.delete_group(&victim, true).unwrap();
    let (items, _, _) = collect(&delta, &tok).await;
    let bigs: Vec<&Value> = items.iter().filter(|x| x["id"] == big.as_str()).collect();
    assert_eq!(bigs.len(), 1, "{items:?}");
    let md = bigs[0]["members@delta"].as_array().unwrap();
    assert_eq!(md.len(), 2);
    let removed = md.iter().find(|m| m["id"] == ids[0].as_str()).unwrap();
    assert_eq!(removed["@removed"]["reason"], "deleted");
    assert_eq!(removed["@odata.type"], "#microsoft.graph.user");
    let added = md.iter().find(|m| m["id"] == ids[45].as_str()).unwrap();
    assert!(added.get("@removed").is_none());
    let del = items.iter().find(|x| x["id"] == victim.as_str()).unwrap();
    assert_eq!(del["@removed"]["reason"], "deleted");
    // Scoped to some groups with id eq filters.
    let f = format!("id eq '{big}' or id eq '{}'", t.group_ids()[0]);
    let (items, _, _) = collect(
        &format!("{g}/groups/delta?$select=displayName&$filter={f}"),
        &tok,
    )
    .await;
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|i| i.get("members@delta").is_none()),
        "members not selected"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn forged_tokens_get_400_not_a_crash() {
    use base64::Engine;
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"k":"g","since":0,"upto":99,"pos":0,"mo":999999,"sel":null,"ids":null,"e":0}"#);
    let (st, _, v) = get(&format!("{g}/groups/delta?$skiptoken={forged}"), &tok).await;
    assert_eq!(st, 200, "{v}");
    for bad in ["%%%", "eyJ4IjoxfQ", ""] {
        let (st, _, _) = get(&format!("{g}/users?$skiptoken={bad}"), &tok).await;
        assert_eq!(st, 400, "skiptoken {bad:?}");
    }
    let (st, _, _) = get(&format!("{g}/users/delta?$skiptoken=%%%"), &tok).await;
    assert_eq!(st, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn prefer_return_minimal() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let g = emu.graph_url();
    let t = emu.tenant();
    let (_, last, _) = collect(
        &format!("{g}/users/delta?$select=displayName,jobTitle,accountEnabled"),
        &tok,
    )
    .await;
    let delta = last["@odata.deltaLink"].as_str().unwrap().to_string();
    let ids = t.user_ids();
    t.update_user(
        &ids[0],
        UserFields {
            job_title: Some("CTO".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let new = t
        .add_user(UserFields {
            display_name: Some("Fresh".into()),
            ..Default::default()
        })
        .unwrap();
    let (st, _, v) = get_h(&delta, &tok, &[("Prefer", "return=minimal")]).await;
    assert_eq!(st, 200);
    let items = v["value"].as_array().unwrap();
    let changed = items.iter().find(|u| u["id"] == ids[0].as_str()).unwrap();
    let mut keys: Vec<&str> = changed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "jobTitle"]);
    let fresh = items.iter().find(|u| u["id"] == new.as_str()).unwrap();
    assert_eq!(fresh["displayName"], "Fresh");
    assert!(fresh.get("accountEnabled").is_some());
    // Without the header all selected properties come back.
    let (_, _, v) = get(&delta, &tok).await;
    let full = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == ids[0].as_str())
        .unwrap()
        .clone();
    assert!(full.get("displayName").is_some());
    emu.shutdown().await;
}
