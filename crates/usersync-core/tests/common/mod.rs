//! Fixture builders shared by the planner tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use usersync_core::config::SyncSettings;
use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
use usersync_core::link::{GroupLink, LinkTable, UserLink};
use usersync_core::model::{
    PhotoRef, SourceGroup, SourceSnapshot, SourceUser, TargetAccount, TargetGroup, TargetSnapshot,
};
use usersync_core::plan::{Plan, PlanInput, plan};
use usersync_core::ports::{TargetCapabilities, TargetDirectory};
use usersync_core::report::Report;
use usersync_core::testkit::{FakeSource, FakeTarget, full_capabilities};

pub const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600_000;

pub fn su(id: &str, upn: &str, display: &str) -> SourceUser {
    SourceUser {
        id: id.into(),
        upn: upn.into(),
        mail: Some(upn.to_lowercase()),
        given_name: None,
        surname: None,
        display_name: Some(display.into()),
        enabled: true,
        sam_account_name: None,
        employee_id: None,
        photo: None,
    }
}

pub fn disabled(mut u: SourceUser) -> SourceUser {
    u.enabled = false;
    u
}

pub fn with_photo(mut u: SourceUser, tag: &str) -> SourceUser {
    u.photo = Some(PhotoRef { tag: tag.into() });
    u
}

pub fn sg(id: &str, name: &str, users: &[&str], groups: &[&str]) -> SourceGroup {
    SourceGroup {
        id: id.into(),
        display_name: name.into(),
        description: None,
        member_users: users.iter().map(|s| s.to_string()).collect(),
        member_groups: groups.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn source(users: Vec<SourceUser>, groups: Vec<SourceGroup>) -> SourceSnapshot {
    SourceSnapshot {
        users,
        groups,
        complete: true,
        warnings: vec![],
    }
}

pub fn ta(
    username: &str,
    display: &str,
    email: &str,
    active: bool,
    groups: &[&str],
) -> TargetAccount {
    TargetAccount {
        username: username.into(),
        key: Some(format!("key-{}", username.to_lowercase())),
        display_name: display.into(),
        email: email.into(),
        active,
        groups: groups
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
    }
}

pub fn target(accounts: Vec<TargetAccount>, groups: &[&str]) -> TargetSnapshot {
    TargetSnapshot {
        accounts,
        groups: groups
            .iter()
            .map(|g| TargetGroup {
                name: g.to_string(),
            })
            .collect(),
    }
}

pub fn ul(sid: &str, username: &str) -> UserLink {
    UserLink {
        source_id: sid.into(),
        username: username.into(),
        target_key: Some(format!("key-{}", username.to_lowercase())),
        pending_username: None,
        deactivated_at_ms: None,
        photo_tag: None,
    }
}

pub fn gl(sid: &str, name: &str) -> GroupLink {
    GroupLink {
        source_id: sid.into(),
        name: name.into(),
        pending: false,
    }
}

pub fn links(users: Vec<UserLink>, groups: Vec<GroupLink>) -> LinkTable {
    LinkTable {
        users: users
            .into_iter()
            .map(|l| (l.source_id.clone(), l))
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| (g.source_id.clone(), g))
            .collect(),
    }
}

pub fn caps() -> TargetCapabilities {
    TargetCapabilities {
        product: "Jira Data Center".into(),
        ..full_capabilities()
    }
}

pub fn settings() -> SyncSettings {
    SyncSettings::default()
}

pub fn make_plan(
    src: &SourceSnapshot,
    tgt: &TargetSnapshot,
    lt: &LinkTable,
    s: &SyncSettings,
    c: &TargetCapabilities,
    now_ms: i64,
) -> Plan {
    plan(&PlanInput {
        source: src,
        target: tgt,
        links: lt,
        settings: s,
        capabilities: c,
        now_ms,
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Applies `plan` to `fake` with a fresh MemoryJournal over `lt`; returns the report and the
/// resulting link table.
pub fn apply_to(
    plan: &Plan,
    fake: &FakeTarget,
    src: &SourceSnapshot,
    lt: &LinkTable,
    now_ms: i64,
) -> (Report, LinkTable) {
    let journal = MemoryJournal::new(lt.clone(), now_ms);
    let source = FakeSource {
        snapshot: src.clone(),
    };
    let report = block_on(apply(
        plan,
        fake,
        &source,
        &journal,
        &ApplyOptions::default(),
        &(),
    ));
    (report, journal.link_table())
}

/// Plans against the fake's current state.
pub fn plan_fake(
    src: &SourceSnapshot,
    fake: &FakeTarget,
    lt: &LinkTable,
    s: &SyncSettings,
    now_ms: i64,
) -> Plan {
    let tgt = fake.snapshot();
    make_plan(src, &tgt, lt, s, &fake.capabilities(), now_ms)
}
