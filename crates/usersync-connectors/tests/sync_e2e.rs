//! End-to-end sync tests: a hand-built source snapshot → the planner → the engine's apply with a
//! journal → the real Atlassian target connector → the Atlassian emulator over real HTTP on
//! 127.0.0.1. Every scenario runs against Jira, Confluence, Bitbucket and Crowd, each product as
//! its own test, and with both journals: the in-memory [`MemoryJournal`] (the link table kept
//! across runs in the harness; tests `jira::…`) and the SQLite store's `StoreJournal` (a store
//! in a temporary directory, one leased run per sync, the links read back from the store; tests
//! `sqlite::jira::…`), so the two journals must keep the same links.
//!
//! Every run also checks that the accounts usersync does not manage (the seeded `user0001`..,
//! `admin`) are left exactly as they were.

use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use usersync_connectors::atlassian::{AtlassianAuth, AtlassianTargetConfig, Product, build_target};
use usersync_connectors::http::RetryPolicy;
use usersync_core::config::{LeaverAction, SyncSettings, UsernameSource, UsernameTransform};
use usersync_core::engine::{ApplyOptions, MemoryJournal, Progress, apply, simulate};
use usersync_core::link::LinkTable;
use usersync_core::model::{PhotoRef, SourceGroup, SourceSnapshot, SourceUser};
use usersync_core::plan::{ConflictKind, OpKind, OpOutcome, Plan, PlanInput, plan};
use usersync_core::ports::{
    ConnectorError, Photo, ReadStats, SourceDirectory, SourceRead, SourceSyncState, TargetDirectory,
};
use usersync_core::report::Report;
use usersync_emulators::atlassian::{
    AtlassianConfig, AtlassianEmulator, DirectoryHandle, Product as EmuProduct,
};
use usersync_store::{RunMode, Store};

/// Fixed clock (unix ms); grace periods are driven by the policy, not by waiting.
const NOW_MS: i64 = 1_750_000_000_000;
/// The domain of the source UPNs; usernames are the UPN local part, lower-cased.
const DOMAIN: &str = "corp.example";
/// The pair name the SQLite journal keeps the links under.
const PAIR: &str = "entra->atlassian";

/// Which journal records the apply (and so keeps the link table between runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// The engine's in-memory journal; the harness keeps the links.
    Memory,
    /// The SQLite store's journal; the links live in the store and are read back after a run.
    Sqlite,
}

// ---------------------------------------------------------------------------------------------
// Source side
// ---------------------------------------------------------------------------------------------

/// A small valid PNG whose pixels depend on `tag`, so a changed picture has different bytes.
fn png_for(tag: &str) -> Vec<u8> {
    let seed = tag
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let img = image::RgbImage::from_fn(8, 8, |x, y| {
        image::Rgb([seed, (x * 30) as u8, (y * 30) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}

/// A source serving the snapshot's users' pictures as real PNGs (the core `FakeSource` serves
/// the tag's bytes labelled `image/png`, which a real product — and the emulator — rejects).
struct PhotoSource {
    snapshot: SourceSnapshot,
}

#[async_trait]
impl SourceDirectory for PhotoSource {
    async fn read(&self, _state: Option<SourceSyncState>) -> Result<SourceRead, ConnectorError> {
        Ok(SourceRead {
            snapshot: std::sync::Arc::new(self.snapshot.clone()),
            next_state: SourceSyncState::default(),
            stats: ReadStats::default(),
        })
    }

    async fn photo(&self, source_id: &str) -> Result<Option<Photo>, ConnectorError> {
        let user = self.snapshot.users.iter().find(|u| u.id == source_id);
        Ok(user.and_then(|u| u.photo.as_ref()).map(|p| Photo {
            content_type: "image/png".into(),
            bytes: png_for(&p.tag),
            tag: p.tag.clone(),
        }))
    }
}

fn src_user(id: &str, local: &str, display: &str, mail: Option<&str>) -> SourceUser {
    SourceUser {
        id: id.into(),
        upn: format!("{local}@{DOMAIN}"),
        mail: mail.map(str::to_string),
        given_name: None,
        surname: None,
        display_name: Some(display.into()),
        enabled: true,
        sam_account_name: None,
        employee_id: None,
        photo: None,
    }
}

fn src_group(id: &str, name: &str, users: &[&str], groups: &[&str]) -> SourceGroup {
    SourceGroup {
        id: id.into(),
        display_name: name.into(),
        description: None,
        member_users: users.iter().map(|s| s.to_string()).collect(),
        member_groups: groups.iter().map(|s| s.to_string()).collect(),
    }
}

/// The base source: four users, three groups, `Platform` nested in `Engineering`.
///
/// | user | username | e-mail | groups (flattened) |
/// |---|---|---|---|
/// | u-alice | alice | alice.anderson@example.com | Engineering |
/// | u-bob | bob | bob@corp.example (UPN, no mail) | Engineering |
/// | u-carol | carol | carol@example.com | Platform, Engineering (nested) |
/// | u-dave | dave | dave@example.com | Sales |
///
/// Erin is disabled and has no account: she is skipped, never created.
fn base_source() -> SourceSnapshot {
    let mut alice = src_user(
        "u-alice",
        "Alice",
        "Alice Anderson",
        Some("alice.anderson@example.com"),
    );
    alice.photo = Some(PhotoRef { tag: "a1".into() });
    let bob = src_user("u-bob", "bob", "Bob Brown", None);
    let carol = src_user("u-carol", "carol", "Carol Clark", Some("carol@example.com"));
    let dave = src_user("u-dave", "dave", "Dave Davis", Some("dave@example.com"));
    let mut erin = src_user("u-erin", "erin", "Erin Evans", Some("erin@example.com"));
    erin.enabled = false;
    SourceSnapshot {
        users: vec![alice, bob, carol, dave, erin],
        groups: vec![
            src_group("g-eng", "Engineering", &["u-alice", "u-bob"], &["g-plat"]),
            src_group("g-plat", "Platform", &["u-carol", "u-erin"], &[]),
            src_group("g-sales", "Sales", &["u-dave"], &[]),
        ],
        complete: true,
        warnings: vec![],
    }
}

fn user_mut<'a>(s: &'a mut SourceSnapshot, id: &str) -> &'a mut SourceUser {
    s.users
        .iter_mut()
        .find(|u| u.id == id)
        .unwrap_or_else(|| panic!("source user {id}"))
}

fn group_mut<'a>(s: &'a mut SourceSnapshot, id: &str) -> &'a mut SourceGroup {
    s.groups
        .iter_mut()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("source group {id}"))
}

fn remove_user(s: &mut SourceSnapshot, id: &str) {
    s.users.retain(|u| u.id != id);
    for g in &mut s.groups {
        g.member_users.remove(id);
    }
}

// ---------------------------------------------------------------------------------------------
// Target side
// ---------------------------------------------------------------------------------------------

fn emu_product(p: Product) -> EmuProduct {
    match p {
        Product::Jira => EmuProduct::Jira,
        Product::Confluence => EmuProduct::Confluence,
        Product::Bitbucket => EmuProduct::Bitbucket,
        Product::Crowd => EmuProduct::Crowd,
    }
}

/// The product's licence group (the policy's access group); Crowd has none.
fn licence_group(p: Product) -> Option<&'static str> {
    match p {
        Product::Jira => Some("jira-software-users"),
        Product::Confluence => Some("confluence-users"),
        Product::Bitbucket => Some("stash-users"),
        Product::Crowd => None,
    }
}

fn auth(p: Product) -> AtlassianAuth {
    match p {
        Product::Crowd => AtlassianAuth::CrowdApp {
            name: "usersync".into(),
            password: SecretString::from("usersync"),
        },
        _ => AtlassianAuth::Bearer {
            token: SecretString::from("emulator-pat"),
        },
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(200),
        max_total_wait: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
}

/// What an unmanaged account looks like; compared before and after every run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    display_name: String,
    email: String,
    active: bool,
    groups: BTreeSet<String>,
    key: String,
}

fn fingerprint(h: &DirectoryHandle, name: &str) -> Option<Fingerprint> {
    h.user(name).map(|u| Fingerprint {
        display_name: u.display_name,
        email: u.email,
        active: u.active,
        groups: h.groups_of(name).into_iter().collect(),
        key: u.key,
    })
}

/// One run: the plan, the report and the writes the emulator counted (read + apply).
struct Run {
    plan: Plan,
    report: Report,
    writes: u64,
}

impl Run {
    fn ops(&self) -> impl Iterator<Item = &OpKind> {
        self.plan.ops.iter().map(|o| &o.kind)
    }

    fn assert_no_failures(&self) {
        assert_eq!(
            (self.report.outcomes.failed, self.report.outcomes.skipped),
            (0, 0),
            "{:#?}",
            self.report.operations
        );
        assert_eq!(self.report.outcomes.applied, self.plan.ops.len());
        assert!(self.report.stopped.is_none(), "{:?}", self.report.stopped);
    }
}

/// Source snapshot + settings + emulator + target + the link table, across runs.
struct Harness {
    p: Product,
    emu: AtlassianEmulator,
    h: DirectoryHandle,
    target: Arc<dyn TargetDirectory>,
    src: SourceSnapshot,
    settings: SyncSettings,
    links: LinkTable,
    /// The clock the planner and the journal see (unix ms).
    now_ms: i64,
    /// Unmanaged accounts as seeded, checked after every run.
    unmanaged: BTreeMap<String, Fingerprint>,
    /// The SQLite store (and its directory, kept alive) when the scenario runs on it.
    store: Option<(tempfile::TempDir, Store)>,
}

impl Harness {
    async fn new(p: Product, journal: Journal) -> Harness {
        let emu = AtlassianEmulator::start(AtlassianConfig::new(emu_product(p)).with_seed_users(3))
            .await
            .expect("emulator starts");
        let h = emu.handle();
        // Crowd seeds no admin and no licence group: give it the same kind of unmanaged
        // accounts, and put an unmanaged account into an unmanaged group everywhere.
        if h.user("admin").is_none() {
            h.seed_user(
                usersync_emulators::atlassian::SeedUser::new("admin")
                    .in_groups(&["crowd-administrators"]),
            );
        }
        assert!(h.add_member("legacy-team", "user0002"));
        let mut cfg = AtlassianTargetConfig::new(p, emu.base_url(), auth(p));
        cfg.retry = fast_retry();
        cfg.timeout = Duration::from_secs(10);
        cfg.confluence_delete_wait = Duration::from_secs(5);
        let target = build_target(&cfg).expect("target builds");

        let mut settings = SyncSettings::default();
        settings.mapping.username_source = UsernameSource::UpnLocalPart;
        settings.mapping.username_fallback = None;
        settings.mapping.username_transforms = vec![UsernameTransform::Lowercase];
        settings.scope.flatten_nested = true;
        settings.policy.access_groups = licence_group(p).into_iter().map(String::from).collect();
        settings.policy.delete_groups = true;
        settings.policy.sync_avatars = true;

        let unmanaged = h
            .users()
            .into_iter()
            .map(|u| {
                let fp = fingerprint(&h, &u.name).expect("seeded");
                (u.name, fp)
            })
            .collect();
        Harness {
            p,
            emu,
            h,
            target,
            src: base_source(),
            settings,
            links: LinkTable::default(),
            now_ms: NOW_MS,
            unmanaged,
            store: match journal {
                Journal::Memory => None,
                Journal::Sqlite => {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = Store::initialise(dir.path()).await.expect("store opens");
                    Some((dir, store))
                }
            },
        }
    }

    /// Plans against the target as it is now (no writes).
    async fn plan(&self) -> Plan {
        let snap = self.target.read().await.expect("target read");
        let caps = self.target.capabilities();
        plan(&PlanInput {
            source: &self.src,
            target: &snap,
            links: &self.links,
            settings: &self.settings,
            capabilities: &caps,
            now_ms: self.now_ms,
        })
    }

    /// Read target → plan → apply with a journal → keep the links.
    async fn sync(&mut self) -> Run {
        self.sync_with(&()).await
    }

    /// [`Harness::sync`] with a progress hook (called after each op, e.g. to inject faults).
    async fn sync_with(&mut self, progress: &dyn Progress) -> Run {
        self.emu.reset_stats();
        let plan = self.plan().await;
        assert!(plan.held.is_none(), "{:?}: held: {:?}", self.p, plan.held);
        let photos = PhotoSource {
            snapshot: self.src.clone(),
        };
        let report = if let Some((_, store)) = &self.store {
            // As the CLI does: one leased run per sync, the links read back from the store.
            let lease = store
                .acquire_lease(PAIR, "e2e", 60_000, self.now_ms)
                .await
                .expect("lease");
            let run_id = store
                .start_leased_run(&lease, RunMode::Sync, self.now_ms)
                .await
                .expect("run starts");
            let journal = store.journal(PAIR, run_id, self.now_ms);
            let report = apply(
                &plan,
                self.target.as_ref(),
                &photos,
                &journal,
                &ApplyOptions::default(),
                progress,
            )
            .await;
            store.release_lease(&lease).await.expect("lease released");
            self.links = store.links(PAIR).await.expect("links read");
            report
        } else {
            let journal = MemoryJournal::new(self.links.clone(), self.now_ms);
            let report = apply(
                &plan,
                self.target.as_ref(),
                &photos,
                &journal,
                &ApplyOptions::default(),
                progress,
            )
            .await;
            self.links = journal.link_table();
            report
        };
        let writes = self.emu.stats().writes();
        self.assert_unmanaged_untouched();
        Run {
            plan,
            report,
            writes,
        }
    }

    /// Syncs and expects every op applied.
    async fn sync_ok(&mut self) -> Run {
        let run = self.sync().await;
        run.assert_no_failures();
        run
    }

    /// A run after which nothing changed: empty plan, no writes at all.
    async fn assert_converged(&mut self) {
        let run = self.sync().await;
        assert!(
            run.plan.is_empty(),
            "{:?}: plan not empty: {:#?}",
            self.p,
            run.plan.ops
        );
        assert_eq!(run.writes, 0, "{:?}: {:?}", self.p, self.emu.stats());
    }

    fn assert_unmanaged_untouched(&self) {
        for (name, before) in &self.unmanaged {
            let now = fingerprint(&self.h, name);
            assert_eq!(
                now.as_ref(),
                Some(before),
                "{:?}: unmanaged account {name} changed",
                self.p
            );
        }
    }

    fn caps_rename(&self) -> bool {
        self.target.capabilities().rename
    }

    fn can_deactivate(&self) -> bool {
        self.target.capabilities().deactivate
    }

    /// Groups of `name` in the emulator, as a set.
    fn groups_of(&self, name: &str) -> BTreeSet<String> {
        self.h.groups_of(name).into_iter().collect()
    }

    /// A managed group's name as the product stores it: Confluence lower-cases group names.
    fn group_name(&self, g: &str) -> String {
        if self.p == Product::Confluence {
            g.to_lowercase()
        } else {
            g.to_string()
        }
    }

    /// Expected groups: the managed ones plus the licence group when `licensed`.
    fn want_groups(&self, managed: &[&str], licensed: bool) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = managed.iter().map(|g| self.group_name(g)).collect();
        if licensed && let Some(l) = licence_group(self.p) {
            s.insert(l.to_string());
        }
        s
    }

    /// Asserts a managed account's fields, state and exact groups.
    fn assert_account(
        &self,
        name: &str,
        display: &str,
        email: &str,
        active: bool,
        managed: &[&str],
        licensed: bool,
    ) {
        let p = self.p;
        let u = self
            .h
            .user(name)
            .unwrap_or_else(|| panic!("{p:?}: account {name} missing"));
        assert_eq!(u.name, name, "{p:?}: username");
        assert!(u.created_via_api, "{p:?}: {name} created by usersync");
        assert_eq!(u.display_name, display, "{p:?}: display name of {name}");
        assert_eq!(u.email, email, "{p:?}: e-mail of {name}");
        assert_eq!(u.active, active, "{p:?}: active flag of {name}");
        assert_eq!(
            self.groups_of(name),
            self.want_groups(managed, licensed),
            "{p:?}: groups of {name}"
        );
    }

    /// The state after a full sync of [`base_source`].
    fn assert_base_state(&self) {
        self.assert_account(
            "alice",
            "Alice Anderson",
            "alice.anderson@example.com",
            true,
            &["Engineering"],
            true,
        );
        self.assert_account(
            "bob",
            "Bob Brown",
            "bob@corp.example",
            true,
            &["Engineering"],
            true,
        );
        self.assert_account(
            "carol",
            "Carol Clark",
            "carol@example.com",
            true,
            &["Engineering", "Platform"],
            true,
        );
        self.assert_account(
            "dave",
            "Dave Davis",
            "dave@example.com",
            true,
            &["Sales"],
            true,
        );
        assert!(self.h.user("erin").is_none(), "{:?}: disabled erin", self.p);
        for g in ["Engineering", "Platform", "Sales"] {
            assert_eq!(
                self.h.group(g).map(|g| g.name),
                Some(self.group_name(g)),
                "{:?}",
                self.p
            );
        }
        assert_eq!(self.h.members("Engineering"), ["alice", "bob", "carol"]);
        assert_eq!(self.h.members("Platform"), ["carol"]);
        assert_eq!(self.h.members("Sales"), ["dave"]);
    }

    /// Managed accounts in the emulator (created through the API), sorted.
    fn managed_names(&self) -> Vec<String> {
        self.h
            .users()
            .into_iter()
            .filter(|u| u.created_via_api)
            .map(|u| u.name)
            .collect()
    }

    fn key_of(&self, name: &str) -> String {
        self.h.user(name).expect("account").key
    }

    /// The key the target connector reads for `name` (what a plan carries in `target_key`).
    async fn read_key_of(&self, name: &str) -> Option<String> {
        let snap = self.target.read().await.expect("target read");
        snap.accounts
            .into_iter()
            .find(|a| a.username == name)
            .and_then(|a| a.key)
    }
}

fn assert_no_reported_membership(run: &Run, user: &str) {
    let listed: Vec<_> = run
        .report
        .memberships
        .added
        .iter()
        .filter(|m| m.username == user)
        .collect();
    assert!(
        listed.is_empty(),
        "the report lists memberships of {user} that were not added: {listed:?}"
    );
}

fn count(run: &Run, f: impl Fn(&OpKind) -> bool) -> usize {
    run.ops().filter(|k| f(k)).count()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Full sync into an empty target, then a second run with no changes.
async fn full_sync_then_idempotent(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    let planned = t.plan().await;
    let sim = simulate(&planned);
    assert_eq!(t.emu.stats().writes(), 0, "{p:?}: planning writes nothing");
    let run = t.sync_ok().await;
    assert_eq!(run.plan, planned, "{p:?}: the plan is deterministic");
    // The simulation announced exactly what the apply did.
    assert_eq!(sim.users, run.report.users, "{p:?}");
    assert_eq!(sim.groups, run.report.groups, "{p:?}");
    assert_eq!(sim.memberships, run.report.memberships, "{p:?}");
    assert_eq!(sim.outcomes.planned, run.report.outcomes.applied);
    t.assert_base_state();
    assert_eq!(t.managed_names(), ["alice", "bob", "carol", "dave"]);
    assert_eq!(run.plan.counts.users_created, 4, "{p:?}");
    assert_eq!(run.plan.counts.groups_created, 3, "{p:?}");
    // Memberships: 3 Engineering (flattened) + 1 Platform + 1 Sales (+ 4 licence).
    let lic = if licence_group(p).is_some() { 4 } else { 0 };
    assert_eq!(run.plan.counts.memberships_added, 5 + lic, "{p:?}");
    assert!(
        run.plan.skipped.iter().any(|s| s.source_id == "u-erin"),
        "{p:?}: {:?}",
        run.plan.skipped
    );
    assert!(
        run.plan.conflicts.is_empty(),
        "{p:?}: {:?}",
        run.plan.conflicts
    );
    assert_eq!(run.report.users.added.len(), 4);
    assert_eq!(run.report.groups.added.len(), 3);
    // Every account has a key in the link table.
    for sid in ["u-alice", "u-bob", "u-carol", "u-dave"] {
        let l = t.links.users.get(sid).expect("linked");
        assert_eq!(
            l.target_key.as_deref(),
            Some(t.key_of(&l.username).as_str()),
            "{p:?}"
        );
        assert!(l.pending_username.is_none());
    }
    assert_eq!(t.links.groups.len(), 3);
    t.assert_converged().await;
    t.assert_base_state();
}

/// The UPN changes: renamed in place where the product can, reported where it cannot.
async fn rename(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    let key = t.key_of("alice");
    user_mut(&mut t.src, "u-alice").upn = format!("alice.smith@{DOMAIN}");
    let run = t.sync_ok().await;
    if t.caps_rename() {
        assert_eq!(
            run.ops().collect::<Vec<_>>(),
            [&OpKind::RenameUser {
                source_id: "u-alice".into(),
                from: "alice".into(),
                to: "alice.smith".into()
            }],
            "{p:?}"
        );
        assert!(t.h.user("alice").is_none(), "{p:?}: old name gone");
        let u = t.h.user("alice.smith").expect("renamed");
        assert_eq!(u.key, key, "{p:?}: same account");
        assert_eq!(
            t.groups_of("alice.smith"),
            t.want_groups(&["Engineering"], true),
            "{p:?}: memberships follow the rename"
        );
        assert_eq!(t.links.users["u-alice"].username, "alice.smith");
        assert_eq!(run.report.users.renamed.len(), 1);
    } else {
        assert!(run.plan.is_empty(), "{p:?}: {:#?}", run.plan.ops);
        assert_eq!(run.writes, 0);
        let warned = |w: &Vec<String>| {
            w.iter()
                .any(|w| w.contains("cannot rename") && w.contains("alice.smith"))
        };
        assert!(warned(&run.plan.warnings), "{p:?}: {:?}", run.plan.warnings);
        assert!(warned(&run.report.warnings), "{p:?}");
        assert!(t.h.user("alice.smith").is_none(), "{p:?}: no duplicate");
        assert_eq!(t.key_of("alice"), key);
    }
    assert_eq!(t.managed_names().len(), 4, "{p:?}: no duplicate account");
    // Display name and e-mail still follow the source, under whichever name the account has.
    user_mut(&mut t.src, "u-alice").display_name = Some("Alice Smith".into());
    let run = t.sync_ok().await;
    assert_eq!(count(&run, |k| matches!(k, OpKind::UpdateUser { .. })), 1);
    let name = if t.caps_rename() {
        "alice.smith"
    } else {
        "alice"
    };
    assert_eq!(t.h.user(name).expect("account").display_name, "Alice Smith");
    t.assert_converged().await;
}

/// Leaver policy `deactivate` (the default), a disabled source user, and reactivation.
async fn leaver_deactivate_and_return(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    let saved = t.src.clone();
    remove_user(&mut t.src, "u-dave");
    user_mut(&mut t.src, "u-bob").enabled = false;
    let run = t.sync_ok().await;
    let deact: Vec<&OpKind> = run
        .ops()
        .filter(|k| matches!(k, OpKind::DeactivateUser { .. }))
        .collect();
    assert_eq!(deact.len(), 2, "{p:?}: {:#?}", run.plan.ops);
    if t.can_deactivate() {
        // Leaver: inactive, out of managed groups, licence group left alone.
        t.assert_account("dave", "Dave Davis", "dave@example.com", false, &[], true);
        // Disabled: inactive, memberships kept.
        t.assert_account(
            "bob",
            "Bob Brown",
            "bob@corp.example",
            false,
            &["Engineering"],
            true,
        );
    } else {
        // Fallback (Bitbucket): still active, out of every managed and licence group.
        let op = run
            .plan
            .ops
            .iter()
            .find(|o| matches!(&o.kind, OpKind::DeactivateUser { username, .. } if username == "dave"))
            .expect("deactivate dave");
        assert!(op.reason.contains("cannot deactivate"), "{}", op.reason);
        assert!(
            run.plan
                .warnings
                .iter()
                .any(|w| w.contains("cannot deactivate")),
            "{:?}",
            run.plan.warnings
        );
        t.assert_account("dave", "Dave Davis", "dave@example.com", true, &[], false);
        t.assert_account("bob", "Bob Brown", "bob@corp.example", true, &[], false);
        assert!(t.links.users["u-dave"].deactivated_at_ms.is_some());
    }
    t.assert_converged().await;

    // Both come back.
    t.src = saved;
    let run = t.sync_ok().await;
    assert_eq!(
        count(&run, |k| matches!(k, OpKind::ReactivateUser { .. })),
        2,
        "{p:?}: {:#?}",
        run.plan.ops
    );
    assert_eq!(run.report.users.reactivated.len(), 2);
    t.assert_base_state();
    assert!(t.links.users["u-dave"].deactivated_at_ms.is_none());
    t.assert_converged().await;
}

/// Leaver policy `delete` with no grace period: the account goes; a returning user is created
/// again.
async fn leaver_delete(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.settings.policy.leaver_action = LeaverAction::Delete;
    t.settings.policy.delete_grace_days = 0;
    t.sync_ok().await;
    let old_key = t.key_of("dave");
    let saved = t.src.clone();
    let dave_key = t.read_key_of("dave").await;
    remove_user(&mut t.src, "u-dave");
    let run = t.sync_ok().await;
    assert_eq!(
        run.ops().collect::<Vec<_>>(),
        [&OpKind::DeleteUser {
            source_id: "u-dave".into(),
            username: "dave".into(),
            target_key: dave_key,
        }],
        "{p:?}"
    );
    assert!(t.h.user("dave").is_none(), "{p:?}: dave deleted");
    assert!(t.h.members("Sales").is_empty());
    assert!(!t.links.users.contains_key("u-dave"));
    assert_eq!(run.report.users.deleted.len(), 1);
    t.assert_converged().await;

    t.src = saved;
    let run = t.sync_ok().await;
    assert_eq!(run.plan.counts.users_created, 1, "{p:?}");
    t.assert_base_state();
    assert_ne!(t.key_of("dave"), old_key, "{p:?}: a new account");
    t.assert_converged().await;
}

/// Leaver policy `keep`: the account is left exactly as it is.
async fn leaver_keep(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.settings.policy.leaver_action = LeaverAction::Keep;
    t.sync_ok().await;
    let before = fingerprint(&t.h, "dave");
    remove_user(&mut t.src, "u-dave");
    let run = t.sync_ok().await;
    assert!(run.plan.is_empty(), "{p:?}: {:#?}", run.plan.ops);
    assert_eq!(run.writes, 0);
    assert_eq!(fingerprint(&t.h, "dave"), before, "{p:?}: dave untouched");
    assert!(t.h.user("dave").expect("dave").active);
    assert!(t.links.users.contains_key("u-dave"), "still managed");
}

/// Group and membership changes, through nesting; a deleted source group is deleted.
async fn groups_and_memberships(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    // Bob leaves Engineering; Dave joins Platform (and so Engineering); Sales is deleted.
    group_mut(&mut t.src, "g-eng").member_users.remove("u-bob");
    group_mut(&mut t.src, "g-plat")
        .member_users
        .insert("u-dave".into());
    t.src.groups.retain(|g| g.id != "g-sales");
    let run = t.sync_ok().await;
    assert_eq!(
        run.plan.counts.memberships_added, 2,
        "{p:?}: {:#?}",
        run.plan.ops
    );
    assert_eq!(count(&run, |k| matches!(k, OpKind::RemoveMember { .. })), 1);
    assert_eq!(
        count(
            &run,
            |k| matches!(k, OpKind::DeleteGroup { name, .. } if name.eq_ignore_ascii_case("Sales"))
        ),
        1
    );
    assert!(t.h.group("Sales").is_none(), "{p:?}: Sales deleted");
    assert_eq!(t.h.members("Engineering"), ["alice", "carol", "dave"]);
    assert_eq!(t.h.members("Platform"), ["carol", "dave"]);
    t.assert_account("bob", "Bob Brown", "bob@corp.example", true, &[], true);
    t.assert_account(
        "dave",
        "Dave Davis",
        "dave@example.com",
        true,
        &["Engineering", "Platform"],
        true,
    );
    assert!(!t.links.groups.contains_key("g-sales"));
    t.assert_converged().await;

    // With delete_groups off a departed group stays (and is reported).
    t.settings.policy.delete_groups = false;
    t.src.groups.retain(|g| g.id != "g-plat");
    group_mut(&mut t.src, "g-eng").member_groups.clear();
    let run = t.sync_ok().await;
    assert!(t.h.group("Platform").is_some(), "{p:?}: kept");
    assert!(
        run.plan
            .warnings
            .iter()
            .any(|w| w.to_lowercase().contains("\"platform\"") && w.contains("delete_groups")),
        "{p:?}: {:?}",
        run.plan.warnings
    );
    // Carol and Dave left Engineering (they were only in it through Platform).
    assert_eq!(t.h.members("Engineering"), ["alice"]);
}

/// Avatars where the product supports them; none planned where it does not.
async fn avatars(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    let run = t.sync_ok().await;
    let supported = t.target.capabilities().avatars;
    let set = count(&run, |k| matches!(k, OpKind::SetAvatar { .. }));
    if !supported {
        assert_eq!(set, 0, "{p:?}");
        assert!(t.h.user("alice").expect("alice").avatar.is_none());
        user_mut(&mut t.src, "u-alice").photo = Some(PhotoRef { tag: "a2".into() });
        t.assert_converged().await;
        return;
    }
    assert_eq!(set, 1, "{p:?}");
    let first =
        t.h.user("alice")
            .expect("alice")
            .avatar
            .expect("avatar set");
    assert_eq!(first.bytes, png_for("a1"), "{p:?}");
    assert_eq!(t.links.users["u-alice"].photo_tag.as_deref(), Some("a1"));
    assert!(t.h.user("bob").expect("bob").avatar.is_none());
    t.assert_converged().await;

    // Alice's picture changes; Bob gets one.
    user_mut(&mut t.src, "u-alice").photo = Some(PhotoRef { tag: "a2".into() });
    user_mut(&mut t.src, "u-bob").photo = Some(PhotoRef { tag: "b1".into() });
    let run = t.sync_ok().await;
    assert_eq!(
        count(&run, |k| matches!(k, OpKind::SetAvatar { .. })),
        2,
        "{p:?}"
    );
    assert_eq!(run.report.avatars_set.len(), 2);
    let a = t.h.user("alice").expect("alice").avatar.expect("avatar");
    assert_eq!(a.bytes, png_for("a2"), "{p:?}: new picture uploaded");
    let b = t.h.user("bob").expect("bob").avatar.expect("avatar");
    assert_eq!(b.bytes, png_for("b1"));
    t.assert_converged().await;

    // Renamed and a new picture in the same run: uploaded under the new name.
    user_mut(&mut t.src, "u-alice").upn = format!("alice.smith@{DOMAIN}");
    user_mut(&mut t.src, "u-alice").photo = Some(PhotoRef { tag: "a3".into() });
    let run = t.sync_ok().await;
    assert!(
        run.ops().any(|k| matches!(k,
            OpKind::SetAvatar { username, .. } if username == "alice.smith")),
        "{p:?}: {:#?}",
        run.plan.ops
    );
    let a =
        t.h.user("alice.smith")
            .expect("renamed")
            .avatar
            .expect("avatar");
    assert_eq!(a.bytes, png_for("a3"), "{p:?}");
    t.assert_converged().await;
}

/// A 429 storm across the read and the writes (injected again while the apply runs, with a
/// zero and a short real `Retry-After`): retried, correct state, no failures.
async fn throttling(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    // Up to 9 in a row per request fit the 10-attempt retry policy.
    t.h.inject_429(6, 0);
    let h = t.h.clone();
    let storm =
        move |_: &usersync_core::plan::Operation, _: &OpOutcome, done: usize, total: usize| {
            if done == 1 || done == total / 2 {
                h.inject_429(6, 0);
            } else if done == 2 {
                h.inject_429(2, 1);
            }
        };
    let run = t.sync_with(&storm).await;
    run.assert_no_failures();
    assert!(run.plan.ops.len() >= 12, "{p:?}: the storm hits the writes");
    assert_eq!(
        t.h.faults().throttle_next,
        0,
        "{p:?}: the storm was consumed"
    );
    t.assert_base_state();
    t.assert_converged().await;
    // Changes under a storm with a real Retry-After.
    group_mut(&mut t.src, "g-sales")
        .member_users
        .insert("u-alice".into());
    user_mut(&mut t.src, "u-bob").display_name = Some("Robert Brown".into());
    t.h.inject_429(3, 1);
    let h = t.h.clone();
    let storm = move |_: &usersync_core::plan::Operation, _: &OpOutcome, done: usize, _: usize| {
        if done == 1 {
            h.inject_429(2, 0);
        }
    };
    let run = t.sync_with(&storm).await;
    run.assert_no_failures();
    assert_eq!(run.plan.ops.len(), 2, "{p:?}: {:#?}", run.plan.ops);
    assert_eq!(t.h.members("Sales"), ["alice", "dave"]);
    assert_eq!(t.h.user("bob").expect("bob").display_name, "Robert Brown");
    t.assert_converged().await;
}

/// A write the product refuses: that op fails with the product's message, the rest applies,
/// and the next run (fault cleared) converges.
async fn failing_write(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    user_mut(&mut t.src, "u-carol").display_name = Some("Carol Cooper".into());
    user_mut(&mut t.src, "u-alice").display_name = Some("Alice Archer".into());
    user_mut(&mut t.src, "u-dave").mail = Some("dave.davis@example.com".into());
    group_mut(&mut t.src, "g-sales")
        .member_users
        .insert("u-bob".into());
    const MSG: &str = "Carol's account is locked by the directory administrator";
    t.h.fail_writes_for_user("carol", 400, MSG);
    let run = t.sync().await;
    assert_eq!(
        run.report.outcomes.failed, 1,
        "{p:?}: {:#?}",
        run.report.operations
    );
    assert_eq!(run.report.outcomes.skipped, 0, "{p:?}");
    assert_eq!(run.report.outcomes.applied, run.plan.ops.len() - 1);
    assert!(run.report.stopped.is_none());
    let failed: Vec<_> = run
        .report
        .operations
        .iter()
        .filter(|r| matches!(r.outcome, Some(OpOutcome::Failed { .. })))
        .collect();
    assert!(
        matches!(&failed[0].op.kind, OpKind::UpdateUser { username, .. } if username == "carol"),
        "{p:?}: {:?}",
        failed[0].op
    );
    let Some(OpOutcome::Failed { message, .. }) = &failed[0].outcome else {
        unreachable!()
    };
    assert!(message.contains(MSG), "{p:?}: message {message:?}");
    assert_eq!(
        t.h.user("carol").expect("carol").display_name,
        "Carol Clark"
    );
    assert_eq!(
        t.h.user("alice").expect("alice").display_name,
        "Alice Archer"
    );
    assert_eq!(
        t.h.user("dave").expect("dave").email,
        "dave.davis@example.com"
    );
    assert_eq!(t.h.members("Sales"), ["bob", "dave"]);
    // Only the applied changes are reported as changes.
    assert_eq!(run.report.users.modified.len(), 2, "{p:?}");
    assert_eq!(run.report.counts.users_updated, 2, "{p:?}");

    t.h.update_faults(|f| f.fail_users.clear());
    let run = t.sync_ok().await;
    assert_eq!(
        run.ops().collect::<Vec<_>>().len(),
        1,
        "{p:?}: only the failed op again: {:#?}",
        run.plan.ops
    );
    assert_eq!(
        t.h.user("carol").expect("carol").display_name,
        "Carol Cooper"
    );
    t.assert_converged().await;
}

/// A create the product refuses: the create fails, the ops that need the account are skipped
/// (not failed), everything else applies, and the next run creates it.
async fn failing_create(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    const MSG: &str = "Username carol is reserved";
    t.h.fail_writes_for_user("carol", 400, MSG);
    let run = t.sync().await;
    assert_eq!(
        run.report.outcomes.failed, 1,
        "{p:?}: {:#?}",
        run.report.operations
    );
    for r in &run.report.operations {
        let about_carol = match &r.op.kind {
            OpKind::CreateUser { account, .. } => account.username == "carol",
            OpKind::AddMembers { usernames, .. } => usernames == &["carol".to_string()],
            _ => false,
        };
        match &r.outcome {
            Some(OpOutcome::Applied { .. }) => assert!(!about_carol, "{p:?}: {:?}", r.op),
            Some(OpOutcome::Failed { message, .. }) => {
                assert!(
                    matches!(&r.op.kind, OpKind::CreateUser { account, .. } if account.username == "carol")
                );
                assert!(message.contains(MSG), "{p:?}: {message}");
            }
            Some(OpOutcome::Skipped { reason }) => {
                assert!(about_carol, "{p:?}: {:?} skipped: {reason}", r.op);
            }
            None => panic!("no outcome"),
        }
    }
    assert!(t.h.user("carol").is_none());
    assert!(
        !t.links.users.contains_key("u-carol"),
        "refused create rolled back"
    );
    assert_eq!(t.h.members("Engineering"), ["alice", "bob"]);
    t.h.update_faults(|f| f.fail_users.clear());
    t.sync_ok().await;
    t.assert_base_state();
    t.assert_converged().await;
}

/// Accounts usersync does not manage stay untouched even when a source user maps to their
/// username (conflict, nothing written) and while they are in the licence group.
async fn unmanaged_untouched(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    // Frank maps to the seeded user0001, Root to admin; both are in Engineering at the source.
    t.src.users.push(src_user(
        "u-frank",
        "user0001",
        "Frank Conflict",
        Some("frank@example.com"),
    ));
    t.src
        .users
        .push(src_user("u-root", "admin", "Root Conflict", None));
    let eng = group_mut(&mut t.src, "g-eng");
    eng.member_users.insert("u-frank".into());
    eng.member_users.insert("u-root".into());
    let run = t.sync_ok().await; // also checks every unmanaged fingerprint
    let conflicts: BTreeSet<(ConflictKind, String)> = run
        .plan
        .conflicts
        .iter()
        .map(|c| (c.kind, c.name.clone()))
        .collect();
    assert_eq!(
        conflicts,
        [
            (ConflictKind::UnmanagedAccount, "admin".to_string()),
            (ConflictKind::UnmanagedAccount, "user0001".to_string()),
        ]
        .into_iter()
        .collect(),
        "{p:?}"
    );
    assert_eq!(run.report.conflicts.len(), 2);
    let mentions = |k: &OpKind, n: &str| match k {
        OpKind::AddMembers { usernames, .. } => usernames.iter().any(|u| u == n),
        OpKind::RemoveMember { username, .. } => username == n,
        OpKind::CreateUser { account, .. } => account.username == n,
        other => other
            .source_id()
            .is_some_and(|s| s == "u-frank" || s == "u-root"),
    };
    for n in ["user0001", "admin"] {
        assert_eq!(count(&run, |k| mentions(k, n)), 0, "{p:?}: op on {n}");
    }
    assert_eq!(t.h.members("Engineering"), ["alice", "bob", "carol"]);
    assert!(!t.links.users.contains_key("u-frank"));
    // The remaining seeded accounts are reported as target-only, not touched.
    assert!(
        run.plan.target_only.contains(&"user0002".to_string()),
        "{p:?}: {:?}",
        run.plan.target_only
    );
    t.assert_base_state();
    t.assert_converged().await;

    // An admin puts an unmanaged account into a managed group: usersync leaves it there.
    assert!(t.h.add_member("Engineering", "user0002"));
    let fp = fingerprint(&t.h, "user0002").expect("user0002");
    t.unmanaged.insert("user0002".into(), fp);
    t.assert_converged().await;
    assert_eq!(
        t.h.members("Engineering"),
        ["alice", "bob", "carol", "user0002"]
    );
    t.h.delete_user("user0002");
    t.unmanaged.remove("user0002");

    // Everyone leaves the source: only managed accounts are deactivated (allow the guard).
    t.settings.policy.guard.allow_mass_removal = true;
    t.src.users.clear();
    t.src.groups.clear();
    let run = t.sync_ok().await;
    assert_eq!(
        count(&run, |k| matches!(k, OpKind::DeactivateUser { .. })),
        4,
        "{p:?}: {:#?}",
        run.plan.ops
    );
    for k in run.ops() {
        for n in ["user0001", "user0002", "user0003", "admin"] {
            assert!(!mentions(k, n), "{p:?}: {k:?}");
        }
    }
    t.assert_converged().await;
}

/// Leaver policy `delete` with a grace period: deactivated first, deleted once it is over.
async fn leaver_delete_after_grace(p: Product, j: Journal) {
    const DAY: i64 = 86_400_000;
    let mut t = Harness::new(p, j).await;
    t.settings.policy.leaver_action = LeaverAction::Delete;
    t.settings.policy.delete_grace_days = 30;
    t.sync_ok().await;
    remove_user(&mut t.src, "u-dave");
    let run = t.sync_ok().await;
    assert_eq!(
        run.ops()
            .filter(|k| matches!(k, OpKind::DeactivateUser { .. }))
            .count(),
        1,
        "{p:?}: {:#?}",
        run.plan.ops
    );
    assert_eq!(count(&run, |k| matches!(k, OpKind::DeleteUser { .. })), 0);
    assert_eq!(t.links.users["u-dave"].deactivated_at_ms, Some(NOW_MS));
    assert!(t.h.user("dave").is_some());
    if t.can_deactivate() {
        assert!(!t.h.user("dave").expect("dave").active, "{p:?}");
    } else {
        assert_eq!(t.groups_of("dave"), BTreeSet::new(), "{p:?}: fallback");
    }
    // Within the grace period: nothing.
    t.now_ms = NOW_MS + 29 * DAY;
    t.assert_converged().await;
    // Grace period over: deleted.
    t.now_ms = NOW_MS + 31 * DAY;
    let dave_key = t.read_key_of("dave").await;
    let run = t.sync_ok().await;
    assert_eq!(
        run.ops().collect::<Vec<_>>(),
        [&OpKind::DeleteUser {
            source_id: "u-dave".into(),
            username: "dave".into(),
            target_key: dave_key,
        }],
        "{p:?}"
    );
    assert!(t.h.user("dave").is_none(), "{p:?}");
    assert!(!t.links.users.contains_key("u-dave"));
    t.assert_converged().await;
}

/// A protected managed account is never deactivated or removed from groups.
async fn protected_leaver(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.settings.policy.protected_accounts.push("Dave".into());
    t.sync_ok().await;
    let before = fingerprint(&t.h, "dave");
    remove_user(&mut t.src, "u-dave");
    let run = t.sync_ok().await;
    assert!(run.plan.is_empty(), "{p:?}: {:#?}", run.plan.ops);
    assert!(
        run.plan
            .warnings
            .iter()
            .any(|w| w.contains("protected account dave")),
        "{p:?}: {:?}",
        run.plan.warnings
    );
    assert_eq!(fingerprint(&t.h, "dave"), before);
}

/// A rename and a membership change of the same user in one run: the membership is written
/// under the name the account has when it runs.
async fn rename_with_membership(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    user_mut(&mut t.src, "u-bob").upn = format!("robert.brown@{DOMAIN}");
    group_mut(&mut t.src, "g-sales")
        .member_users
        .insert("u-bob".into());
    let run = t.sync_ok().await;
    let name = if t.caps_rename() {
        "robert.brown"
    } else {
        "bob"
    };
    assert!(
        run.ops().any(|k| matches!(k,
            OpKind::AddMembers { usernames, .. } if usernames == &[name.to_string()])),
        "{p:?}: {:#?}",
        run.plan.ops
    );
    assert_eq!(
        t.groups_of(name),
        t.want_groups(&["Engineering", "Sales"], true),
        "{p:?}"
    );
    assert_eq!(t.managed_names().len(), 4);
    t.assert_converged().await;
}

/// A rename onto the name of an unmanaged account: a conflict, nothing written to either.
async fn rename_onto_unmanaged(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    let before = fingerprint(&t.h, "alice");
    user_mut(&mut t.src, "u-alice").upn = format!("user0003@{DOMAIN}");
    let run = t.sync_ok().await; // checks user0003 is untouched
    assert!(run.plan.is_empty(), "{p:?}: {:#?}", run.plan.ops);
    assert_eq!(run.writes, 0);
    if t.caps_rename() {
        assert!(
            run.plan
                .conflicts
                .iter()
                .any(|c| c.kind == ConflictKind::RenameTargetTaken && c.name == "user0003"),
            "{p:?}: {:?}",
            run.plan.conflicts
        );
    } else {
        assert!(
            run.plan
                .warnings
                .iter()
                .any(|w| w.contains("cannot rename")),
            "{p:?}"
        );
    }
    assert_eq!(fingerprint(&t.h, "alice"), before, "{p:?}");
}

/// A rename the product refuses: the rename fails with the product's message, the ops on the
/// new name are skipped, unrelated ops apply, and the next run converges.
async fn failing_rename(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.sync_ok().await;
    user_mut(&mut t.src, "u-alice").upn = format!("alice.smith@{DOMAIN}");
    user_mut(&mut t.src, "u-alice").display_name = Some("Alice Smith".into());
    let sales = group_mut(&mut t.src, "g-sales");
    sales.member_users.insert("u-alice".into());
    sales.member_users.insert("u-bob".into());
    const MSG: &str = "Rename refused by the directory policy";
    t.h.fail_writes_for_user("alice.smith", 400, MSG);
    let run = t.sync().await;
    if !t.caps_rename() {
        // Confluence: no rename is attempted, so nothing fails.
        run.assert_no_failures();
        assert_eq!(t.h.members("Sales"), ["alice", "bob", "dave"]);
        t.h.update_faults(|f| f.fail_users.clear());
        t.assert_converged().await;
        return;
    }
    assert_eq!(
        run.report.outcomes.failed, 1,
        "{p:?}: {:#?}",
        run.report.operations
    );
    for r in &run.report.operations {
        match (&r.op.kind, &r.outcome) {
            (OpKind::RenameUser { .. }, Some(OpOutcome::Failed { message, .. })) => {
                assert!(message.contains(MSG), "{p:?}: {message}")
            }
            (OpKind::UpdateUser { .. }, Some(OpOutcome::Skipped { .. })) => {}
            (OpKind::AddMembers { usernames, .. }, Some(OpOutcome::Skipped { .. })) => {
                assert_eq!(usernames, &["alice.smith".to_string()])
            }
            (OpKind::AddMembers { usernames, .. }, Some(OpOutcome::Applied { .. })) => {
                assert!(usernames.contains(&"bob".to_string()), "{p:?}")
            }
            other => panic!("{p:?}: unexpected {other:?}"),
        }
    }
    assert!(run.report.stopped.is_none());
    assert!(t.h.user("alice.smith").is_none());
    assert_eq!(
        t.h.user("alice").expect("alice").display_name,
        "Alice Anderson"
    );
    assert_eq!(t.h.members("Sales"), ["bob", "dave"]);
    let link = &t.links.users["u-alice"];
    assert_eq!(
        (link.username.as_str(), link.pending_username.as_deref()),
        ("alice", None)
    );
    if !t.target.capabilities().batch_membership {
        assert_no_reported_membership(&run, "alice.smith");
    }

    t.h.update_faults(|f| f.fail_users.clear());
    let run = t.sync_ok().await;
    assert_eq!(run.plan.ops.len(), 3, "{p:?}: {:#?}", run.plan.ops);
    t.assert_account(
        "alice.smith",
        "Alice Smith",
        "alice.anderson@example.com",
        true,
        &["Engineering", "Sales"],
        true,
    );
    t.assert_converged().await;
}

/// A 5xx on create is ambiguous (the account may exist): the pending link is kept, the next run
/// re-issues the create, and no duplicate appears.
async fn ambiguous_failure_converges(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.h.fail_writes_for_user("carol", 500, "Internal error while creating the user");
    let run = t.sync().await;
    assert_eq!(run.report.outcomes.failed, 1, "{p:?}");
    assert!(
        run.report.stopped.is_none(),
        "{p:?}: a 5xx on one item is not systemic"
    );
    assert_eq!(
        t.links.users["u-carol"].pending_username.as_deref(),
        Some("carol"),
        "{p:?}: ambiguous failure keeps the pending intent"
    );
    t.h.update_faults(|f| f.fail_users.clear());
    let run = t.sync_ok().await;
    assert_eq!(run.plan.counts.users_created, 1, "{p:?}");
    t.assert_base_state();
    assert_eq!(t.managed_names(), ["alice", "bob", "carol", "dave"]);
    t.assert_converged().await;
}

/// A group replaced at the source (deleted and re-created in Entra under the same name, so with
/// a new ID): the new source group takes the managed target group over (no delete and
/// re-create, which would lose its permissions), and the next run must not delete it for the
/// departed source group (issue 7: the SQLite journal kept the departed group's link).
async fn group_takeover(p: Product, j: Journal) {
    let mut t = Harness::new(p, j).await;
    t.settings.policy.adopt_existing = usersync_core::config::AdoptMode::ByUsername;
    t.sync_ok().await;
    let sales_before = t.h.group("Sales").expect("Sales created");
    let sales = group_mut(&mut t.src, "g-sales");
    sales.id = "g-sales-2".into();
    sales.member_users.insert("u-bob".into());
    let run = t.sync_ok().await;
    assert_eq!(
        count(
            &run,
            |k| matches!(k, OpKind::AdoptGroup { source_id, .. } if source_id == "g-sales-2")
        ),
        1,
        "{p:?}/{j:?}: {:#?}",
        run.plan.ops
    );
    assert_eq!(
        count(&run, |k| matches!(
            k,
            OpKind::DeleteGroup { .. } | OpKind::CreateGroup { .. }
        )),
        0,
        "{p:?}/{j:?}: {:#?}",
        run.plan.ops
    );
    assert!(
        !t.links.groups.contains_key("g-sales"),
        "{p:?}/{j:?}: the departed group's link survives the takeover: {:?}",
        t.links.groups
    );
    assert_eq!(
        t.links.groups.get("g-sales-2").map(|l| l.name.as_str()),
        Some(t.group_name("Sales").as_str()),
        "{p:?}/{j:?}"
    );
    assert_eq!(t.h.members("Sales"), ["bob", "dave"], "{p:?}/{j:?}");
    // The next runs leave the taken-over group alone: not deleted, nothing written.
    t.assert_converged().await;
    t.assert_converged().await;
    let sales_after = t.h.group("Sales").expect("Sales kept");
    assert_eq!(
        sales_after, sales_before,
        "{p:?}/{j:?}: the same target group"
    );
    assert_eq!(t.h.members("Sales"), ["bob", "dave"], "{p:?}/{j:?}");
}

macro_rules! per_product {
    ($($scenario:ident),* $(,)?) => {
        per_product!(@products super::Journal::Memory; $($scenario),*);
        /// The same scenarios with the SQLite store's journal.
        mod sqlite {
            use super::*;
            per_product!(@products super::Journal::Sqlite; $($scenario),*);
        }
    };
    (@products $j:expr; $($scenario:ident),*) => {
        mod jira {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Product::Jira, $j).await })*
        }
        mod confluence {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Product::Confluence, $j).await })*
        }
        mod bitbucket {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Product::Bitbucket, $j).await })*
        }
        mod crowd {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Product::Crowd, $j).await })*
        }
    };
}

per_product!(
    full_sync_then_idempotent,
    rename,
    leaver_deactivate_and_return,
    leaver_delete,
    leaver_keep,
    leaver_delete_after_grace,
    protected_leaver,
    rename_with_membership,
    rename_onto_unmanaged,
    groups_and_memberships,
    avatars,
    throttling,
    failing_write,
    failing_create,
    failing_rename,
    ambiguous_failure_converges,
    unmanaged_untouched,
    group_takeover,
);

/// Regression tests for bugs these end-to-end tests found.
mod regressions {
    use super::*;

    /// With batch membership (Bitbucket) the engine drops the users whose create failed from an
    /// `AddMembers` batch; the report must not list (or count) those memberships as added.
    #[tokio::test]
    async fn bitbucket_report_lists_memberships_of_a_failed_create() {
        let mut t = Harness::new(Product::Bitbucket, Journal::Memory).await;
        t.h.fail_writes_for_user("carol", 400, "Username carol is reserved");
        let run = t.sync().await;
        assert!(t.h.user("carol").is_none());
        assert_no_reported_membership(&run, "carol");
        assert_eq!(
            run.report.counts.memberships_added,
            run.report.memberships.added.len()
        );
        assert_eq!(run.report.counts.memberships_added, 6);
    }

    /// Issue 7 item 4: a username reassigned between the read and the write. The plan
    /// deactivates leaver `bob` (key K1); before the apply that account is deleted and a new
    /// `bob` (key K2) appears. Jira is written by key, so the write answers 404 ("account
    /// gone") and the new `bob` stays active instead of being deactivated by name.
    #[tokio::test]
    async fn jira_deactivate_goes_by_key_not_reused_name() {
        let mut t = Harness::new(Product::Jira, Journal::Memory).await;
        t.sync_ok().await;
        let k1 = t.key_of("bob");
        remove_user(&mut t.src, "u-bob");
        let plan = t.plan().await;
        assert!(plan.held.is_none(), "{:?}", plan.held);
        let deact = plan
            .ops
            .iter()
            .find(
                |o| matches!(&o.kind, OpKind::DeactivateUser { username, .. } if username == "bob"),
            )
            .expect("deactivate bob planned");
        assert!(
            matches!(&deact.kind, OpKind::DeactivateUser { target_key: Some(k), .. } if *k == k1),
            "{:?}",
            deact.kind
        );

        // Between plan and apply: bob's account goes and the name is given to someone else.
        assert!(t.h.delete_user("bob"));
        let k2 =
            t.h.seed_user(usersync_emulators::atlassian::SeedUser::new("bob"))
                .key;
        assert_ne!(k1, k2);

        let journal = MemoryJournal::new(t.links.clone(), t.now_ms);
        let photos = PhotoSource {
            snapshot: t.src.clone(),
        };
        let report = apply(
            &plan,
            t.target.as_ref(),
            &photos,
            &journal,
            &ApplyOptions::default(),
            &(),
        )
        .await;
        let bob = t.h.user("bob").expect("the new bob");
        assert_eq!(bob.key, k2);
        assert!(bob.active, "the new bob (key {k2}) was deactivated by name");
        // The engine re-reads bob before the write, sees key K2 where the plan saw K1, and
        // skips it (before the re-read existed, the by-key write failed as "not found").
        let deact = report
            .operations
            .iter()
            .find(|r| matches!(r.op.kind, OpKind::DeactivateUser { .. }))
            .expect("deactivation recorded");
        assert!(
            matches!(
                &deact.outcome,
                Some(OpOutcome::Skipped { reason }) if reason.contains(&k2)
            ),
            "{:#?}",
            deact.outcome
        );
    }
}
