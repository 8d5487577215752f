//! Spoiled collection pages (`FaultConfig::page_faults`): each kind changes exactly the page it
//! names, loops stay sticky, and the control API accepts the JSON form.

mod graph_support;

use graph_support::*;
use serde_json::{Value, json};
use usersync_emulators::graph::{
    FaultConfig, GraphConfig, GraphEmulator, PageFault, PageFaultKind,
};

async fn emu_with(endpoint: &str, page: u64, kind: PageFaultKind) -> (GraphEmulator, String) {
    let mut gc = GraphConfig::tiny();
    gc.delta_page_size = 20;
    gc.faults = FaultConfig {
        page_faults: vec![PageFault {
            endpoint: endpoint.into(),
            page,
            kind,
        }],
        ..FaultConfig::default()
    };
    let emu = GraphEmulator::start(gc).await.unwrap();
    let tok = token(&emu).await;
    (emu, tok)
}

#[tokio::test]
async fn value_variants_spoil_only_the_named_page() {
    for (kind, check) in [
        (PageFaultKind::ValueNull, json!(null)),
        (PageFaultKind::ValueObject, json!({})),
    ] {
        let (emu, tok) = emu_with("users.delta", 2, kind).await;
        let g = emu.graph_url();
        let (s, _, p1) = get(&format!("{g}/users/delta"), &tok).await;
        assert_eq!(s, 200);
        assert!(p1["value"].is_array());
        let (_, _, p2) = get(p1["@odata.nextLink"].as_str().unwrap(), &tok).await;
        assert_eq!(p2["value"], check);
        assert!(p2["@odata.nextLink"].is_string(), "links untouched");
        assert_eq!(emu.stats().get("pageFaults"), 1);
    }
    let (emu, tok) = emu_with("users.delta", 1, PageFaultKind::ValueMissing).await;
    let (_, _, p1) = get(&format!("{}/users/delta", emu.graph_url()), &tok).await;
    assert!(p1.get("value").is_none());
}

#[tokio::test]
async fn self_link_and_cycle_are_sticky() {
    let (emu, tok) = emu_with("users.delta", 2, PageFaultKind::SelfLink).await;
    let g = emu.graph_url();
    let (_, _, p1) = get(&format!("{g}/users/delta"), &tok).await;
    let second = p1["@odata.nextLink"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (_, _, p) = get(&second, &tok).await;
        assert_eq!(p["@odata.nextLink"].as_str(), Some(second.as_str()));
        assert!(p.get("@odata.deltaLink").is_none());
    }
    let (emu, tok) = emu_with("users.delta", 2, PageFaultKind::LinkToFirst).await;
    let first = format!("{}/users/delta", emu.graph_url());
    let (_, _, p1) = get(&first, &tok).await;
    let second = p1["@odata.nextLink"].as_str().unwrap().to_string();
    let (_, _, p2) = get(&second, &tok).await;
    assert_eq!(p2["@odata.nextLink"].as_str(), Some(first.as_str()));
}

#[tokio::test]
async fn foreign_link_moves_only_the_origin() {
    // A delta round's last page: the deltaLink moves (tiny tenant = 50 users, 3 pages of 20).
    let kind = PageFaultKind::ForeignLink {
        origin: "http://elsewhere.example:8080".into(),
    };
    let (emu, tok) = emu_with("users.delta", 3, kind.clone()).await;
    let g = emu.graph_url();
    let (items, last, pages) = collect(&format!("{g}/users/delta"), &tok).await;
    assert_eq!((pages, items.len()), (3, 50));
    let link = last["@odata.deltaLink"].as_str().unwrap();
    assert!(
        link.starts_with("http://elsewhere.example:8080/v1.0/users/delta?$deltatoken="),
        "{link}"
    );
    // A plain listing's last page gets a nextLink to the other origin.
    let (emu, tok) = emu_with("groups", 1, kind).await;
    let (_, _, p) = get(&format!("{}/groups", emu.graph_url()), &tok).await;
    let link = p["@odata.nextLink"].as_str().unwrap();
    assert!(
        link.starts_with("http://elsewhere.example:8080/v1.0/groups"),
        "{link}"
    );
}

#[tokio::test]
async fn page_faults_over_the_control_api() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let body = json!({"pageFaults":[
        {"endpoint":"groups.delta","page":1,"kind":{"type":"bothLinks"}},
        {"endpoint":"users","page":1,"kind":{"type":"foreignLink","origin":"http://x:1"}}
    ]});
    let r = client()
        .put(format!("{}/_emulator/faults", emu.login_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let f = emu.tenant().faults();
    assert_eq!(f.page_faults.len(), 2);
    assert_eq!(f.page_faults[0].kind, PageFaultKind::BothLinks);
    let tok = token(&emu).await;
    let (_, _, p) = get(&format!("{}/groups/delta", emu.graph_url()), &tok).await;
    assert!(p["@odata.nextLink"].is_string() && p["@odata.deltaLink"].is_string());
    let _: Value = p;
}
