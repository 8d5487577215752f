//! How a run reads its target: a full reconcile (the whole directory, which then replaces the
//! stored target state) or an incremental read (only the accounts and groups the source delta
//! and the plan touch, patched into the stored state). The planner always receives a complete
//! `TargetSnapshot`; only where it came from differs. The rule is
//! [`usersync_core::target_state::ReadDecision`]; this module does the I/O around it, and after
//! an apply patches the stored state with what was written and re-read.

use anyhow::Context as _;
use futures::StreamExt as _;
use sha2::Digest as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{OpOutcome, Operation, PlanInput, plan};
use usersync_core::ports::{ApplyJournal, ConnectorError, JournalError, TargetDirectory};
use usersync_core::target_state::{
    Observation, ObservingTarget, ReadDecision, StoredMeta, TargetFullReason, TargetReadMode,
    TargetReadStats, TargetState, Touched,
};
use usersync_store::Store;

use crate::config::TargetConfig;

/// Default hours between full target reconciles.
pub const DEFAULT_RECONCILE_HOURS: u64 = 24;

/// Which source objects a delta read changed: compared by a digest of each object before and
/// after the read (so it works whatever the source connector keeps internally).
#[derive(Debug, Default)]
pub struct SourceDigests {
    users: HashMap<String, [u8; 32]>,
    groups: HashMap<String, [u8; 32]>,
}

/// Source objects that changed (added, changed or removed) in a read.
#[derive(Debug, Default, Clone)]
pub struct SourceChanges {
    /// User object IDs.
    pub users: BTreeSet<String>,
    /// Group object IDs.
    pub groups: BTreeSet<String>,
}

fn digest<T: serde::Serialize>(v: &T) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    // Serialising the source model cannot fail (plain strings, sets, options).
    let _ = serde_json::to_writer(&mut DigestWriter(&mut h), v);
    h.finalize().into()
}

struct DigestWriter<'a>(&'a mut sha2::Sha256);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SourceDigests {
    /// Digests of every user and group of a snapshot.
    pub fn of(s: &SourceSnapshot) -> Self {
        SourceDigests {
            users: s.users.iter().map(|u| (u.id.clone(), digest(u))).collect(),
            groups: s.groups.iter().map(|g| (g.id.clone(), digest(g))).collect(),
        }
    }

    /// What differs between these digests (before the read) and `after`.
    pub fn changes(&self, after: &SourceSnapshot) -> SourceChanges {
        let mut c = SourceChanges::default();
        let mut seen_u = BTreeSet::new();
        for u in &after.users {
            seen_u.insert(u.id.as_str());
            if self.users.get(&u.id) != Some(&digest(u)) {
                c.users.insert(u.id.clone());
            }
        }
        c.users.extend(
            self.users
                .keys()
                .filter(|id| !seen_u.contains(id.as_str()))
                .cloned(),
        );
        let mut seen_g = BTreeSet::new();
        for g in &after.groups {
            seen_g.insert(g.id.as_str());
            if self.groups.get(&g.id) != Some(&digest(g)) {
                c.groups.insert(g.id.clone());
            }
        }
        c.groups.extend(
            self.groups
                .keys()
                .filter(|id| !seen_g.contains(id.as_str()))
                .cloned(),
        );
        c
    }
}

/// The configuration a stored state was read and planned with: a change forces a full read.
pub fn fingerprint(t: &TargetConfig) -> String {
    let v = serde_json::json!({
        "product": t.product.as_str(),
        "base_url": t.base_url,
        "jira_application_keys": t.jira_application_keys,
        "bitbucket_add_to_default_group": t.bitbucket_add_to_default_group,
        "sync": t.sync,
    });
    let d = digest(&v);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a run plans against.
pub struct Prepared {
    /// The state, patched by the fresh reads; later patched by the apply.
    pub state: TargetState,
    /// The snapshot the planner reads.
    pub snapshot: TargetSnapshot,
    /// For the report.
    pub stats: TargetReadStats,
}

/// Everything [`prepare`] needs.
pub struct Ctx<'a> {
    /// The store.
    pub store: &'a Store,
    /// `source->target`.
    pub pair: &'a str,
    /// The target.
    pub target: &'a dyn TargetDirectory,
    /// The target's configuration.
    pub config: &'a TargetConfig,
    /// `--full`.
    pub forced: bool,
    /// The source read was a delta read.
    pub source_delta: bool,
    /// What the source read changed (delta reads).
    pub source_changes: Option<&'a SourceChanges>,
    /// The source snapshot.
    pub source: &'a SourceSnapshot,
    /// The pair's links.
    pub links: &'a LinkTable,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// Below this many objects an incremental read always re-reads one by one.
const RE_READ_FLOOR: usize = 1_000;

/// Reads the target in full or incrementally, and saves what was read.
pub async fn prepare(cx: Ctx<'_>) -> anyhow::Result<Prepared> {
    let fp = fingerprint(cx.config);
    let hours = cx
        .config
        .reconcile_every_hours
        .unwrap_or(DEFAULT_RECONCILE_HOURS);
    let decision = ReadDecision {
        forced: cx.forced,
        source_delta: cx.source_delta,
        supported: cx.target.supports_targeted_reads(),
        stored: cx.store.target_state_meta(cx.pair).await?,
        fingerprint: fp.clone(),
        now_ms: cx.now_ms,
        reconcile_every_ms: i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX),
    };
    let mut mode = decision.mode();
    if mode == TargetReadMode::Incremental {
        match incremental(&cx).await? {
            Ok(p) => return Ok(p),
            Err(why) => mode = TargetReadMode::Full(why),
        }
    }
    let snapshot = cx
        .target
        .read()
        .await
        .map_err(|e| crate::exit::connection_err(format!("target {}: {e}", cx.config.name)))?;
    let meta = StoredMeta {
        full_read_ms: cx.now_ms,
        fingerprint: fp,
        clean: true,
    };
    if let Err(e) = cx
        .store
        .replace_target_state(cx.pair, &snapshot, &meta)
        .await
    {
        // The run goes on. An older state must not be patched by this run's apply and then
        // trusted: forget it, so the next run reads in full again.
        tracing::warn!(pair = cx.pair, error = %e, "could not save the target state");
        if let Err(e) = cx.store.clear_target_state(cx.pair).await {
            tracing::warn!(pair = cx.pair, error = %e, "could not clear the stored target state");
        }
    }
    let state = TargetState::from_snapshot(snapshot);
    let snapshot = state.snapshot();
    Ok(Prepared {
        state,
        snapshot,
        stats: TargetReadStats {
            mode,
            accounts_read: 0,
            groups_read: 0,
        },
    })
}

/// The incremental read: the stored state, with the objects the source change, the pending
/// links and a first plan touch read fresh. `Err(reason)` when a full read is needed after all.
async fn incremental(cx: &Ctx<'_>) -> anyhow::Result<Result<Prepared, TargetFullReason>> {
    let Some((_, stored)) = cx.store.target_state(cx.pair).await? else {
        // Cleared between the check and the read (another process).
        return Ok(Err(TargetFullReason::NoState));
    };
    let mut state = TargetState::from_snapshot(stored);
    let mut touched = Touched::default();
    if let Some(ch) = cx.source_changes {
        for id in &ch.users {
            if let Some(l) = cx.links.users.get(id) {
                touched.user(&l.username);
            }
        }
        for id in &ch.groups {
            if let Some(l) = cx.links.groups.get(id) {
                touched.group(&l.name);
            }
        }
    }
    // Interrupted creates and renames: the account may exist under either name.
    for l in cx.links.users.values() {
        if let Some(p) = &l.pending_username {
            touched.user(&l.username);
            touched.user(p);
        }
    }
    for g in cx.links.groups.values().filter(|g| g.pending) {
        touched.group(&g.name);
    }
    // What the change would do against the stored state names every object it writes.
    let stored = state.snapshot();
    let first = plan(&PlanInput {
        source: cx.source,
        target: &stored,
        links: cx.links,
        settings: &cx.config.sync,
        capabilities: &cx.target.capabilities(),
        now_ms: cx.now_ms,
    });
    for op in &first.ops {
        touched.add_op(&op.kind);
    }
    drop(first);
    // One request per object: past the cost of a full read, read in full instead.
    let too_many = usersync_core::target_state::re_read_costs_more(
        touched.accounts.len() + touched.groups.len(),
        &stored,
        RE_READ_FLOOR,
    );
    drop(stored);
    if too_many {
        return Ok(Err(TargetFullReason::TooManyToReRead));
    }
    let limit = cx.target.capabilities().max_concurrency.max(1);
    let accounts: Vec<(String, Result<_, ConnectorError>)> =
        futures::stream::iter(touched.accounts.values().cloned())
            .map(|u| async move {
                let r = cx.target.read_account(&u).await;
                (u, r)
            })
            .buffered(limit)
            .collect()
            .await;
    for (u, r) in accounts {
        let fresh =
            r.map_err(|e| crate::exit::connection_err(format!("target {}: {e}", cx.config.name)))?;
        // A keyed account gone from its name may have been renamed outside usersync: planning
        // without it could create a second account for the same person.
        if fresh.is_none() && state.account(&u).is_some_and(|a| a.key.is_some()) {
            return Ok(Err(TargetFullReason::StateDiverged));
        }
        state.observe_account(&u, fresh);
    }
    let groups: Vec<(String, Result<bool, ConnectorError>)> =
        futures::stream::iter(touched.groups.values().cloned())
            .map(|g| async move {
                let r = cx.target.group_exists(&g).await;
                (g, r)
            })
            .buffered(limit)
            .collect()
            .await;
    for (g, r) in groups {
        let exists =
            r.map_err(|e| crate::exit::connection_err(format!("target {}: {e}", cx.config.name)))?;
        // A group the state knows keeps its stored spelling; a new one is learnt as named.
        state.observe_group(&g, exists);
    }
    let changes = state.take_changes();
    cx.store
        .patch_target_state(cx.pair, &changes)
        .await
        .context("saving the fresh target reads")?;
    let snapshot = state.snapshot();
    Ok(Ok(Prepared {
        state,
        snapshot,
        stats: TargetReadStats {
            mode: TargetReadMode::Incremental,
            accounts_read: touched.accounts.len() as u64,
            groups_read: touched.groups.len() as u64,
        },
    }))
}

/// A journal that passes every call to the store's journal and keeps each outcome, so the
/// stored target state can be patched with what the apply did.
pub struct RecordingJournal<'a> {
    inner: &'a dyn ApplyJournal,
    seen: Mutex<Vec<(Operation, OpOutcome)>>,
}

impl<'a> RecordingJournal<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn ApplyJournal) -> Self {
        Self {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The outcomes seen, in plan order.
    pub fn take(&self) -> Vec<(Operation, OpOutcome)> {
        let mut v = std::mem::take(&mut *self.seen.lock().expect("journal lock"));
        v.sort_by_key(|(op, _)| op.seq);
        v
    }
}

#[async_trait::async_trait]
impl ApplyJournal for RecordingJournal<'_> {
    async fn before(&self, op: &Operation) -> Result<(), JournalError> {
        self.inner.before(op).await
    }
    async fn after(&self, op: &Operation, outcome: &OpOutcome) -> Result<(), JournalError> {
        let r = self.inner.after(op, outcome).await;
        self.seen
            .lock()
            .expect("journal lock")
            .push((op.clone(), outcome.clone()));
        r
    }
    async fn links(&self) -> Result<LinkTable, JournalError> {
        self.inner.links().await
    }
}

/// After an apply: patches the state with the re-reads the engine made and the operations it
/// applied, saves the changed rows, and marks the state clean only when the apply finished
/// cleanly (otherwise the next run reads the target in full).
pub async fn after_apply(
    store: &Store,
    pair: &str,
    state: &mut TargetState,
    observed: Vec<Observation>,
    applied: Vec<(Operation, OpOutcome)>,
    clean: bool,
) {
    for o in observed {
        state.observe(o);
    }
    for (op, outcome) in &applied {
        state.apply(op, outcome);
    }
    let changes = state.take_changes();
    let saved = store.patch_target_state(pair, &changes).await;
    if let Err(e) = &saved {
        tracing::warn!(pair, error = %e, "could not save the target state after the apply; the next run reads the target in full");
    }
    if clean
        && saved.is_ok()
        && let Err(e) = store.set_target_state_clean(pair, true).await
    {
        tracing::warn!(pair, error = %e, "could not mark the target state clean");
    }
}

/// Wraps a target so the engine's re-reads are seen (see [`ObservingTarget`]).
pub fn observing(t: &dyn TargetDirectory) -> ObservingTarget<'_> {
    ObservingTarget::new(t)
}
