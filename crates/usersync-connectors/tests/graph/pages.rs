//! Spoiled pages (issue 7 items 1–3): a page without the documented shape, a nextLink that
//! loops, or a link to another origin makes the read incomplete, and a plan built from that read
//! removes nothing. Every page index of every paged listing the source uses is spoiled in turn:
//! `users/delta` and `groups/delta` on full and on delta reads, and the scoped mode's group-name
//! lookup and `transitiveMembers` pages.

use crate::common::{config, start};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usersync_connectors::graph::{GraphSource, GraphSourceConfig};
use usersync_core::config::SyncSettings;
use usersync_core::engine::{self, ApplyOptions};
use usersync_core::journal::MemoryJournal;
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{OpKind, Plan, PlanInput, plan};
use usersync_core::ports::{SourceDirectory, SourceSyncState};
use usersync_core::testkit::{FakeTarget, full_capabilities};
use usersync_emulators::graph::{
    FaultConfig, GraphConfig, GraphEmulator, GroupFields, PageFault, PageFaultKind, UserFields,
};

/// A plain TCP listener standing in for "another host": counts connections and requests that
/// carried a bearer token, and answers each with an empty last page.
struct Elsewhere {
    origin: String,
    connections: Arc<AtomicUsize>,
    bearer: Arc<AtomicUsize>,
}

async fn elsewhere() -> Elsewhere {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", l.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let bearer = Arc::new(AtomicUsize::new(0));
    let (c, b) = (connections.clone(), bearer.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let b = b.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                if head.contains("authorization: bearer") {
                    b.fetch_add(1, Ordering::SeqCst);
                }
                let body = r#"{"value":[]}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    Elsewhere {
        origin,
        connections,
        bearer,
    }
}

fn plan_for(src: &SourceSnapshot, target: &FakeTarget, links: &LinkTable) -> Plan {
    let settings = SyncSettings::default();
    let caps = full_capabilities();
    plan(&PlanInput {
        source: src,
        target: &target.snapshot(),
        links,
        settings: &settings,
        capabilities: &caps,
        now_ms: 1_000,
    })
}

/// Operations that destroy or take away: what an incomplete read must never produce.
fn removals(p: &Plan) -> Vec<String> {
    p.ops
        .iter()
        .filter(|op| {
            matches!(
                op.kind,
                OpKind::DeactivateUser { .. }
                    | OpKind::DeleteUser { .. }
                    | OpKind::DeleteGroup { .. }
                    | OpKind::RemoveMember { .. }
            )
        })
        .map(|op| format!("{:?}", op.kind))
        .collect()
}

/// A source synced once into a fake target, then changed in the tenant so that a complete read
/// plans removals.
struct World {
    emu: GraphEmulator,
    src: GraphSource,
    state: SourceSyncState,
    target: FakeTarget,
    links: LinkTable,
}

async fn world(cfg: impl FnOnce(&mut GraphSourceConfig, &GraphEmulator)) -> World {
    let mut gc = GraphConfig::tiny();
    // Small pages so every listing spans several pages, groups split over pages.
    gc.delta_page_size = 15;
    gc.delta_members_per_page = 10;
    let emu = start(gc).await;
    let mut c = config(&emu);
    c.retry.max_attempts = 2;
    cfg(&mut c, &emu);
    let src = GraphSource::new(c).unwrap();
    let first = src.read(None).await.unwrap();
    assert!(first.snapshot.complete, "{:?}", first.snapshot.warnings);
    let target = FakeTarget::new(full_capabilities(), TargetSnapshot::default());
    let journal = MemoryJournal::new(LinkTable::default(), 1_000);
    let p = plan_for(&first.snapshot, &target, &journal.link_table());
    let report = engine::apply(&p, &target, &src, &journal, &ApplyOptions::default(), &()).await;
    assert_eq!(report.outcomes.failed, 0);
    let links = journal.link_table();

    // A leaver who is in a group, and a change to every user and group so a delta read spans
    // several pages too.
    let t = emu.tenant();
    let leaver = first
        .snapshot
        .groups
        .iter()
        .flat_map(|g| g.member_users.iter())
        .next()
        .unwrap()
        .clone();
    for id in t.user_ids() {
        t.update_user(
            &id,
            UserFields {
                display_name: Some(format!("Changed {id}")),
                ..Default::default()
            },
        )
        .unwrap();
    }
    for id in t.group_ids() {
        t.update_group(
            &id,
            GroupFields {
                description: Some("changed".into()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    t.delete_user(&leaver, true).unwrap();
    World {
        emu,
        src,
        state: first.next_state,
        target,
        links,
    }
}

/// How a read starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    Full,
    Delta,
}

impl World {
    async fn read(&self, start: Start) -> SourceSnapshot {
        let state = match start {
            Start::Full => None,
            Start::Delta => Some(self.state.clone()),
        };
        std::sync::Arc::unwrap_or_clone(self.src.read(state).await.unwrap().snapshot)
    }

    /// Pages of `endpoint` served by a clean read.
    async fn pages(&self, start: Start, endpoint: &str) -> u64 {
        self.emu.tenant().clear_faults();
        self.emu.reset_stats();
        let s = self.read(start).await;
        assert!(s.complete, "{:?}", s.warnings);
        // The clean read does plan removals: the assertions below could fail.
        let p = plan_for(&s, &self.target, &self.links);
        assert!(
            !removals(&p).is_empty(),
            "a complete read removes the leaver"
        );
        self.emu.stats().get(endpoint)
    }

    /// Spoils each page of `endpoint` in turn; every read must be incomplete, say why, and plan
    /// no removal.
    async fn spoil_each_page(&self, start: Start, endpoint: &str, kind: &PageFaultKind) {
        let n = self.pages(start, endpoint).await;
        assert!(n >= 1, "{endpoint} was read on a {start:?} read");
        for page in 1..=n {
            self.emu.tenant().set_faults(FaultConfig {
                page_faults: vec![PageFault {
                    endpoint: endpoint.into(),
                    page,
                    kind: kind.clone(),
                }],
                ..FaultConfig::default()
            });
            self.emu.reset_stats();
            let s = self.read(start).await;
            let case = format!("{start:?} read, {endpoint} page {page}/{n}, {kind:?}");
            assert!(
                self.emu.stats().get("pageFaults") >= 1,
                "{case}: fault fired"
            );
            assert!(!s.complete, "{case}: read must be incomplete");
            // One listing per delta endpoint, so the emulator's page index is the read's;
            // group members restart at page 1 for each group.
            let named = if endpoint.ends_with(".delta") {
                format!("page {page} ")
            } else {
                "page ".to_string()
            };
            assert!(
                s.warnings
                    .iter()
                    .any(|w| w.contains(&named) && w.contains("incomplete")),
                "{case}: a warning names the page: {:?}",
                s.warnings
            );
            let p = plan_for(&s, &self.target, &self.links);
            assert_eq!(removals(&p), Vec::<String>::new(), "{case}");
        }
        self.emu.tenant().clear_faults();
    }
}

async fn tenant_reads_survive(kind: PageFaultKind) {
    let w = world(|_, _| {}).await;
    for start in [Start::Full, Start::Delta] {
        for endpoint in ["users.delta", "groups.delta"] {
            w.spoil_each_page(start, endpoint, &kind).await;
        }
    }
}

async fn scoped_reads_survive(kind: PageFaultKind) {
    let w = world(|c, emu| {
        let t = emu.tenant();
        // The largest group by id, and a new group by name (the name lookup is a listing too).
        let mut gs: Vec<(usize, String)> = t
            .group_ids()
            .into_iter()
            .map(|g| (t.group_member_ids(&g).unwrap().len(), g))
            .collect();
        gs.sort();
        let (_, by_id) = gs.pop().unwrap();
        let named = t
            .add_group(GroupFields {
                display_name: Some("Scoped By Name".into()),
                ..Default::default()
            })
            .unwrap();
        for u in t.user_ids().into_iter().step_by(5) {
            t.add_member(&named, &u).unwrap();
        }
        c.scope_group_ids = vec![by_id];
        c.scope_group_names = vec!["Scoped By Name".into()];
        c.page_size = 4;
        c.max_concurrency = 1;
    })
    .await;
    for endpoint in ["groups", "transitiveMembers"] {
        w.spoil_each_page(Start::Delta, endpoint, &kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_null_page_makes_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::ValueNull).await;
    scoped_reads_survive(PageFaultKind::ValueNull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_object_page_makes_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::ValueObject).await;
    scoped_reads_survive(PageFaultKind::ValueObject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_missing_page_makes_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::ValueMissing).await;
    scoped_reads_survive(PageFaultKind::ValueMissing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_with_both_links_makes_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::BothLinks).await;
    scoped_reads_survive(PageFaultKind::BothLinks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_referencing_next_link_ends_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::SelfLink).await;
    scoped_reads_survive(PageFaultKind::SelfLink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_link_cycle_ends_the_read_incomplete() {
    tenant_reads_survive(PageFaultKind::LinkToFirst).await;
    scoped_reads_survive(PageFaultKind::LinkToFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_to_another_origin_is_not_followed() {
    let other = elsewhere().await;
    let kind = PageFaultKind::ForeignLink {
        origin: other.origin.clone(),
    };
    tenant_reads_survive(kind.clone()).await;
    scoped_reads_survive(kind).await;
    // Same host, other port: still another origin.
    assert_eq!(
        other.bearer.load(Ordering::SeqCst),
        0,
        "token sent elsewhere"
    );
    assert_eq!(
        other.connections.load(Ordering::SeqCst),
        0,
        "connected elsewhere"
    );
}
