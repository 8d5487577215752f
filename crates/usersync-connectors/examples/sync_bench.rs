//! End-to-end sync benchmark: a generated Entra ID tenant (the in-process Graph emulator) synced
//! into one Atlassian product (the in-process Atlassian emulator) through the real connectors,
//! planner and engine, the way `usersync sync` wires a run (`crates/usersync/src/runner.rs`),
//! with a [`MemoryJournal`] keeping the link table between runs instead of the store.
//!
//! ```text
//! cargo run --release -p usersync-connectors --example sync_bench -- \
//!     <tiny|s|m> <jira|confluence|bitbucket|crowd> [--photos] [--latency-ms N] [--concurrency N]
//! ```
//!
//! Three phases run one after the other:
//! 1. **initial**: a full source read and a sync into the empty product;
//! 2. **no-change**: an incremental (delta) read and a sync that should write nothing;
//! 3. **small-change**: about 1% of the tenant's users are changed (UPN renamed, display name
//!    changed, account disabled, user deleted, user added to a group), then an incremental sync.
//!
//! For each phase it prints the Graph requests per endpoint (the read, and the photo downloads
//! the apply makes), the target's read requests against the minimum number of pages at the
//! product's maximum page size, the plan's operations by kind, the target's write requests
//! against the minimum the plan needs (one request per operation that writes, per user for
//! membership adds — per 500 users and group for Bitbucket's batch add), reads made during the
//! apply, the wall time of source read / target read / plan / apply, and the peak RSS
//! (`VmHWM`, the whole process: both emulators' state included). A table sums it up at the end.
//!
//! `--latency-ms N` adds N ms to every request of both emulators (a real server is rarely
//! faster than a few ms per request); `--concurrency N` sets the target's and the Graph
//! connector's request concurrency (default: the connectors' defaults).

use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usersync_connectors::atlassian::{AtlassianAuth, AtlassianTargetConfig, Product, build_target};
use usersync_connectors::graph::{GraphCloud, GraphCredential, GraphSource, GraphSourceConfig};
use usersync_core::config::{SyncSettings, UsernameSource, UsernameTransform};
use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{OpKind, OpOutcome, Plan, PlanInput, plan};
use usersync_core::ports::{SourceDirectory, SourceSyncState, TargetCapabilities, TargetDirectory};
use usersync_emulators::atlassian::{
    AtlassianConfig, AtlassianEmulator, Product as EmuProduct, RequestStats as TargetStats,
};
use usersync_emulators::graph::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, GraphConfig, GraphEmulator,
    RequestStats as GraphStats, TenantSize, UserFields,
};

/// Users per Bitbucket `add-users` request (the connector's batch size).
const BITBUCKET_BATCH: u64 = 500;

/// Command-line arguments.
struct Args {
    size: TenantSize,
    product: Product,
    photos: bool,
    latency: Duration,
    concurrency: Option<usize>,
}

const USAGE: &str = "usage: sync_bench <tiny|s|m> <jira|confluence|bitbucket|crowd> \
                     [--photos] [--latency-ms N] [--concurrency N]";

fn parse_args() -> anyhow::Result<Args> {
    let mut size = None;
    let mut product = None;
    let mut photos = false;
    let mut latency = Duration::ZERO;
    let mut concurrency = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--photos" => photos = true,
            "--latency-ms" => latency = Duration::from_millis(value("--latency-ms")?.parse()?),
            "--concurrency" => concurrency = Some(value("--concurrency")?.parse::<usize>()?.max(1)),
            "jira" => product = Some(Product::Jira),
            "confluence" => product = Some(Product::Confluence),
            "bitbucket" => product = Some(Product::Bitbucket),
            "crowd" => product = Some(Product::Crowd),
            other if size.is_none() => size = Some(other.parse::<TenantSize>()?),
            other => anyhow::bail!("unexpected argument `{other}`\n{USAGE}"),
        }
    }
    Ok(Args {
        size: size.ok_or_else(|| anyhow::anyhow!("{USAGE}"))?,
        product: product.ok_or_else(|| anyhow::anyhow!("{USAGE}"))?,
        photos,
        latency,
        concurrency,
    })
}

#[path = "support/rss.rs"]
mod rss;
use rss::vm_hwm;

fn emu_product(p: Product) -> EmuProduct {
    match p {
        Product::Jira => EmuProduct::Jira,
        Product::Confluence => EmuProduct::Confluence,
        Product::Bitbucket => EmuProduct::Bitbucket,
        Product::Crowd => EmuProduct::Crowd,
    }
}

/// The product's licence group, used as the policy's access group (Crowd has none).
fn licence_group(p: Product) -> Option<&'static str> {
    match p {
        Product::Jira => Some("jira-software-users"),
        Product::Confluence => Some("confluence-users"),
        Product::Bitbucket => Some("stash-users"),
        Product::Crowd => None,
    }
}

/// The emulator's credentials: the admin's PAT, or Crowd's application.
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

/// Largest page each listing of the product returns: (users, groups, members of one group).
/// Jira lists all groups in one `groups/picker` request and caps `group/member` at 50;
/// Confluence caps its listings at 200; Bitbucket at 1000 (`page.max.size`); Crowd's
/// connector asks for 1000.
fn max_pages(p: Product) -> (u64, Option<u64>, u64) {
    match p {
        Product::Jira => (1000, None, 50),
        Product::Confluence => (200, Some(200), 200),
        Product::Bitbucket => (1000, Some(1000), 1000),
        Product::Crowd => (1000, Some(1000), 1000),
    }
}

/// Minimum read requests for `snap` at the product's maximum page sizes: the user pages, the
/// group pages and, per group, its member pages (at least one, even when empty).
fn min_target_reads(p: Product, snap: &TargetSnapshot) -> u64 {
    let (user_page, group_page, member_page) = max_pages(p);
    let mut members: HashMap<&str, u64> = snap.groups.iter().map(|g| (&*g.name, 0)).collect();
    for a in &snap.accounts {
        for g in &a.groups {
            *members.entry(g).or_default() += 1;
        }
    }
    let users = (snap.accounts.len() as u64).div_ceil(user_page).max(1);
    let groups = group_page.map_or(1, |n| (snap.groups.len() as u64).div_ceil(n).max(1));
    let member_pages: u64 = members
        .values()
        .map(|&m| m.div_ceil(member_page).max(1))
        .sum();
    users + groups + member_pages
}

/// The operation's kind as the plan serialises it.
fn kind_name(k: &OpKind) -> &'static str {
    match k {
        OpKind::CreateUser { .. } => "create_user",
        OpKind::AdoptUser { .. } => "adopt_user",
        OpKind::AdoptGroup { .. } => "adopt_group",
        OpKind::RenameUser { .. } => "rename_user",
        OpKind::UpdateUser { .. } => "update_user",
        OpKind::ReactivateUser { .. } => "reactivate_user",
        OpKind::DeactivateUser { .. } => "deactivate_user",
        OpKind::DeleteUser { .. } => "delete_user",
        OpKind::CreateGroup { .. } => "create_group",
        OpKind::DeleteGroup { .. } => "delete_group",
        OpKind::AddMembers { .. } => "add_members",
        OpKind::RemoveMember { .. } => "remove_member",
        OpKind::SetAvatar { .. } => "set_avatar",
    }
}

/// Write requests an operation needs at the least: none for adoptions (links only) and for
/// (de)activations on a product that cannot deactivate (the planner removed the memberships
/// instead), one per user for membership adds (per [`BITBUCKET_BATCH`] users with a batch
/// add), none for avatars on a product without them, one otherwise.
fn min_writes(k: &OpKind, caps: &TargetCapabilities) -> u64 {
    match k {
        OpKind::AdoptUser { .. } | OpKind::AdoptGroup { .. } => 0,
        OpKind::ReactivateUser { .. } | OpKind::DeactivateUser { .. } if !caps.deactivate => 0,
        OpKind::SetAvatar { .. } if !caps.avatars => 0,
        OpKind::AddMembers { usernames, .. } if caps.batch_membership => {
            (usernames.len() as u64).div_ceil(BITBUCKET_BATCH)
        }
        OpKind::AddMembers { usernames, .. } => usernames.len() as u64,
        _ => 1,
    }
}

/// Graph request counts per endpoint, without the `requests` total.
fn graph_counts(s: &GraphStats) -> BTreeMap<String, u64> {
    s.counts
        .iter()
        .filter(|(k, v)| *k != "requests" && **v > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one phase measured.
struct PhaseResult {
    name: &'static str,
    /// Graph requests of the source read, per endpoint.
    graph_read: GraphStats,
    /// Graph requests made during the apply (photo downloads), per endpoint.
    graph_apply: GraphStats,
    source_mode: String,
    target_read: TargetStats,
    target_read_min: u64,
    target_apply: TargetStats,
    target_write_min: u64,
    ops: usize,
    ops_by_kind: BTreeMap<&'static str, usize>,
    memberships_added: usize,
    held: Option<String>,
    /// Conflicts and skipped users of the plan.
    conflicts: usize,
    skipped: usize,
    /// (applied, failed, skipped).
    outcomes: (usize, usize, usize),
    first_failures: Vec<String>,
    t_source: Duration,
    t_target: Duration,
    t_plan: Duration,
    t_apply: Duration,
    rss: String,
}

impl PhaseResult {
    fn print(&self) {
        println!("== {} ==", self.name);
        println!(
            "  source read ({}): {:.2?}, {} Graph requests: {}",
            self.source_mode,
            self.t_source,
            self.graph_read.total(),
            fmt_counts(&graph_counts(&self.graph_read))
        );
        if self.graph_apply.total() > 0 {
            println!(
                "  Graph requests during apply (photos): {}: {}",
                self.graph_apply.total(),
                fmt_counts(&graph_counts(&self.graph_apply))
            );
        }
        println!(
            "  target read: {:.2?}, {} requests (minimum {})",
            self.t_target,
            self.target_read.total(),
            self.target_read_min
        );
        for (route, n) in &self.target_read.requests {
            println!("    {route:<52} {n:>7}");
        }
        println!(
            "  plan: {:.2?}, {} operations, {} conflicts, {} skipped users{}",
            self.t_plan,
            self.ops,
            self.conflicts,
            self.skipped,
            self.held
                .as_ref()
                .map(|h| format!(" — HELD: {h}"))
                .unwrap_or_default()
        );
        for (k, n) in &self.ops_by_kind {
            let extra = if *k == "add_members" {
                format!(" ({} memberships)", self.memberships_added)
            } else {
                String::new()
            };
            println!("    {k:<20} {n:>7}{extra}");
        }
        let (applied, failed, skipped) = self.outcomes;
        println!(
            "  apply: {:.2?}, {} writes (minimum {}), {} reads; {applied} applied, {failed} failed, {skipped} skipped",
            self.t_apply,
            self.target_apply.writes(),
            self.target_write_min,
            self.target_apply.total() - self.target_apply.writes(),
        );
        for (route, n) in &self.target_apply.requests {
            println!("    {route:<52} {n:>7}");
        }
        for f in &self.first_failures {
            println!("    ! {f}");
        }
        println!("  peak RSS: {}", self.rss);
    }
}

/// Both emulators, both connectors, and what is kept between runs (delta state and links).
struct Bench {
    product: Product,
    graph: GraphEmulator,
    atlassian: AtlassianEmulator,
    source: GraphSource,
    target: Arc<dyn TargetDirectory>,
    settings: SyncSettings,
    links: LinkTable,
    state: Option<SourceSyncState>,
    /// The source snapshot of the last run (picks the users to change).
    last_source: Arc<SourceSnapshot>,
    apply_concurrency: usize,
}

impl Bench {
    /// One run: source read → target read → plan → apply, measured.
    async fn run(&mut self, name: &'static str) -> anyhow::Result<PhaseResult> {
        self.graph.reset_stats();
        let t = Instant::now();
        let read = self.source.read(self.state.take()).await?;
        let t_source = t.elapsed();
        let graph_read = self.graph.stats();
        if !read.snapshot.complete {
            println!(
                "  warning: incomplete source read: {:?}",
                read.snapshot.warnings
            );
        }
        self.state = Some(read.next_state.clone());
        self.last_source = Arc::clone(&read.snapshot);

        self.atlassian.reset_stats();
        let t = Instant::now();
        let snapshot = self.target.read().await?;
        let t_target = t.elapsed();
        let target_read = self.atlassian.stats();
        let target_read_min = min_target_reads(self.product, &snapshot);

        let caps = self.target.capabilities();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let t = Instant::now();
        let the_plan: Plan = plan(&PlanInput {
            source: &read.snapshot,
            target: &snapshot,
            links: &self.links,
            settings: &self.settings,
            capabilities: &caps,
            now_ms,
        });
        let t_plan = t.elapsed();

        let mut ops_by_kind = BTreeMap::new();
        let mut memberships_added = 0;
        let mut target_write_min = 0;
        for op in &the_plan.ops {
            *ops_by_kind.entry(kind_name(&op.kind)).or_default() += 1;
            if let OpKind::AddMembers { usernames, .. } = &op.kind {
                memberships_added += usernames.len();
            }
            target_write_min += min_writes(&op.kind, &caps);
        }

        self.graph.reset_stats();
        self.atlassian.reset_stats();
        let t = Instant::now();
        let mut outcomes = (0, 0, 0);
        let mut first_failures = Vec::new();
        if the_plan.held.is_none() {
            let journal = MemoryJournal::new(self.links.clone(), now_ms);
            let opts = ApplyOptions {
                max_concurrency: self.apply_concurrency,
            };
            let report = apply(
                &the_plan,
                self.target.as_ref(),
                &self.source,
                &journal,
                &opts,
                &(),
            )
            .await;
            self.links = journal.link_table();
            outcomes = (
                report.outcomes.applied,
                report.outcomes.failed,
                report.outcomes.skipped,
            );
            for (op, outcome) in journal.outcomes() {
                if first_failures.len() >= 5 {
                    break;
                }
                match outcome {
                    OpOutcome::Failed { message, .. } => {
                        first_failures.push(format!("{}: failed: {message}", kind_name(&op.kind)))
                    }
                    OpOutcome::Skipped { reason } => {
                        first_failures.push(format!("{}: skipped: {reason}", kind_name(&op.kind)))
                    }
                    OpOutcome::Applied { .. } => {}
                }
            }
            if let Some(s) = &report.stopped {
                first_failures.push(format!("apply stopped: {s:?}"));
            }
        }
        let t_apply = t.elapsed();

        Ok(PhaseResult {
            name,
            graph_read,
            graph_apply: self.graph.stats(),
            source_mode: read.stats.mode.to_string(),
            target_read,
            target_read_min,
            target_apply: self.atlassian.stats(),
            target_write_min,
            ops: the_plan.ops.len(),
            ops_by_kind,
            memberships_added,
            held: the_plan.held.as_ref().map(ToString::to_string),
            conflicts: the_plan.conflicts.len(),
            skipped: the_plan.skipped.len(),
            outcomes,
            first_failures,
            t_source,
            t_target,
            t_plan,
            t_apply,
            rss: vm_hwm(),
        })
    }

    /// Plans from a full (non-incremental) source read against the target as it is now, without
    /// applying: after a converged incremental sync the plan is empty, so any operation left
    /// here is a change the incremental read missed. Returns the operations by kind.
    async fn full_read_plan(&self) -> anyhow::Result<BTreeMap<&'static str, usize>> {
        let read = self.source.read(None).await?;
        let snapshot = self.target.read().await?;
        let caps = self.target.capabilities();
        let the_plan = plan(&PlanInput {
            source: &read.snapshot,
            target: &snapshot,
            links: &self.links,
            settings: &self.settings,
            capabilities: &caps,
            now_ms: jiff::Timestamp::now().as_millisecond(),
        });
        let mut by_kind = BTreeMap::new();
        for op in &the_plan.ops {
            *by_kind.entry(kind_name(&op.kind)).or_default() += 1;
        }
        Ok(by_kind)
    }

    /// Changes about 1% of the synced users (at least five), picked evenly among the users
    /// that have an active managed account: in turn a UPN rename, a display name change, a
    /// disabled account, a (soft) deleted user, and a user added to a group it is not in
    /// (a group without nested groups, so the change is not hidden by flattening; its parent
    /// groups gain the member too). Returns a description of each change.
    fn mutate(&self) -> anyhow::Result<Vec<String>> {
        let t = self.graph.tenant();
        let snap = &self.last_source;
        let users: Vec<&str> = snap
            .users
            .iter()
            .filter(|u| {
                u.enabled
                    && self
                        .links
                        .users
                        .get(&u.id)
                        .is_some_and(|l| l.deactivated_at_ms.is_none())
            })
            .map(|u| u.id.as_str())
            .collect();
        let leaf_groups: Vec<_> = snap
            .groups
            .iter()
            .filter(|g| g.member_groups.is_empty() && self.links.groups.contains_key(&g.id))
            .collect();
        let n = (users.len() / 100).max(5).min(users.len());
        let stride = users.len() / n.max(1);
        let mut done = Vec::new();
        for i in 0..n {
            let id = users[i * stride];
            let upn = t.user_upn(id).unwrap_or_default();
            match i % 5 {
                0 => {
                    let (local, domain) = upn.split_once('@').unwrap_or((&upn, "example.com"));
                    let new = format!("{local}.renamed@{domain}");
                    t.update_user(
                        id,
                        UserFields {
                            user_principal_name: Some(new.clone()),
                            ..Default::default()
                        },
                    )?;
                    done.push(format!("rename {upn} -> {new}"));
                }
                1 => {
                    t.update_user(
                        id,
                        UserFields {
                            display_name: Some(format!("Changed Name {i}")),
                            ..Default::default()
                        },
                    )?;
                    done.push(format!("display name of {upn}"));
                }
                2 => {
                    t.set_account_enabled(id, false)?;
                    done.push(format!("disable {upn}"));
                }
                3 => {
                    t.delete_user(id, false)?;
                    done.push(format!("delete {upn}"));
                }
                _ => {
                    let group = leaf_groups
                        .iter()
                        .cycle()
                        .skip(i)
                        .take(leaf_groups.len())
                        .find(|g| !g.member_users.contains(id));
                    if let Some(g) = group {
                        t.add_member(&g.id, id)?;
                        done.push(format!("add {upn} to group {}", g.display_name));
                    }
                }
            }
        }
        Ok(done)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn summary(results: &[PhaseResult]) {
    println!();
    println!(
        "{:<13} {:>6} {:>5} {:>9} {:>9} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "phase",
        "graph",
        "ops",
        "t.reads",
        "min",
        "t.writes",
        "min",
        "a.rd",
        "src s",
        "tgt s",
        "plan s",
        "apply s",
        "peak RSS"
    );
    for r in results {
        println!(
            "{:<13} {:>6} {:>5} {:>9} {:>9} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8} {:>8} {:>12}",
            r.name,
            r.graph_read.total() + r.graph_apply.total(),
            r.ops,
            r.target_read.total(),
            r.target_read_min,
            r.target_apply.writes(),
            r.target_write_min,
            r.target_apply.total() - r.target_apply.writes(),
            secs(r.t_source),
            secs(r.t_target),
            secs(r.t_plan),
            secs(r.t_apply),
            r.rss
        );
    }
    println!(
        "graph = Graph requests (read + photos); t.reads = target read requests; t.writes = \
         target writes during the apply; a.rd = target reads during the apply"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (u, g, m) = args.size.counts();
    let t0 = Instant::now();
    let mut gc = GraphConfig::sized(args.size, 1);
    gc.latency = args.latency;
    let graph = GraphEmulator::start(gc).await?;
    let mut ac = AtlassianConfig::new(emu_product(args.product));
    ac.latency = args.latency;
    let atlassian = AtlassianEmulator::start(ac).await?;
    println!(
        "tenant {:?}: {u} users, {g} groups, ~{m} memberships; target {:?}; photos {}; \
         latency {:?}; emulators started in {:.1?}",
        args.size,
        args.product,
        args.photos,
        args.latency,
        t0.elapsed()
    );

    let mut scfg = GraphSourceConfig::new(
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        GraphCredential::Secret(SecretString::from(DEFAULT_CLIENT_SECRET)),
    );
    scfg.cloud = GraphCloud::Custom {
        login_url: graph.login_url(),
        graph_url: graph.graph_url(),
        scope: None,
    };
    scfg.read_photos = args.photos;
    let mut tcfg =
        AtlassianTargetConfig::new(args.product, atlassian.base_url(), auth(args.product));
    if let Some(c) = args.concurrency {
        scfg.max_concurrency = c;
        tcfg.max_concurrency = c;
    }
    println!(
        "concurrency: Graph {}, target {}",
        scfg.max_concurrency, tcfg.max_concurrency
    );
    let source = GraphSource::new(scfg)?;
    let target = build_target(&tcfg)?;

    // As the end-to-end tests configure a target: username = lower-cased UPN local part,
    // nested groups flattened, the licence group as access group.
    let mut settings = SyncSettings::default();
    settings.mapping.username_source = UsernameSource::UpnLocalPart;
    settings.mapping.username_fallback = None;
    settings.mapping.username_transforms = vec![UsernameTransform::Lowercase];
    settings.scope.flatten_nested = true;
    settings.policy.access_groups = licence_group(args.product)
        .into_iter()
        .map(String::from)
        .collect();
    settings.policy.sync_avatars = args.photos;

    let mut bench = Bench {
        product: args.product,
        graph,
        atlassian,
        source,
        target,
        settings,
        links: LinkTable::default(),
        state: None,
        last_source: Arc::default(),
        apply_concurrency: 0,
    };

    let mut results = Vec::new();
    let r = bench.run("initial").await?;
    r.print();
    results.push(r);

    let r = bench.run("no-change").await?;
    r.print();
    results.push(r);

    let changes = bench.mutate()?;
    println!("mutated the tenant: {} changes", changes.len());
    for c in &changes {
        println!("    {c}");
    }
    let r = bench.run("small-change").await?;
    r.print();
    results.push(r);

    summary(&results);

    let left = bench.full_read_plan().await?;
    println!(
        "convergence check (full source read + plan, not applied): {} operations{}",
        left.values().sum::<usize>(),
        if left.is_empty() {
            String::new()
        } else {
            format!(
                " — the incremental syncs missed: {}",
                left.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}
