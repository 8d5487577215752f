//! Simulate and apply. One code path: [`simulate`] is the report of a plan without outcomes;
//! [`apply`] runs the plan in dependency order (an operation starts once the operations it
//! depends on have finished; bounded concurrency, no phase barriers; runtime-agnostic via
//! `futures`), journals every operation, keeps going past per-item errors, stops on
//! systemic ones, skips operations whose prerequisite failed, and reports every outcome.
//!
//! A 403 (`Forbidden`) is judged by what surrounds it: the products refuse single accounts
//! (protected, system or directory-read-only ones) with 403 as well as credentials without the
//! admin right. So a 403 fails its item only, and the run stops when
//! [`FORBIDDEN_STREAK_STOPS`] writes in a row were refused with 403 and no write succeeded in
//! between — what credentials lacking the right produce.
//!
//! Memberships: the planner emits one `AddMembers` per group when the target supports batch
//! membership, else one per (group, user) so every user's outcome is reported separately; the
//! engine passes the list through to [`TargetDirectory::add_members`] either way.

pub use crate::journal::{MemoryJournal, apply_outcome_to_links, record_intent};

use crate::model::name_key;
use crate::plan::{OpKind, OpOutcome, Operation, Phase, Plan};
use crate::ports::{
    AccountRef, ApplyJournal, ConnectorError, ErrorKind, SourceDirectory, TargetCapabilities,
    TargetDirectory,
};
use crate::report::{Report, RunMode};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Apply settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Concurrent writes; 0 uses the target's `max_concurrency` (at least 1).
    pub max_concurrency: usize,
}

/// Receives each outcome as it happens (CLI progress bars, API event streams).
pub trait Progress: Send + Sync {
    /// Called after each operation; `done` of `total` operations are finished.
    fn on_outcome(&self, op: &Operation, outcome: &OpOutcome, done: usize, total: usize);
}

/// No progress reporting.
impl Progress for () {
    fn on_outcome(&self, _: &Operation, _: &OpOutcome, _: usize, _: usize) {}
}

impl<F> Progress for F
where
    F: Fn(&Operation, &OpOutcome, usize, usize) + Send + Sync,
{
    fn on_outcome(&self, op: &Operation, outcome: &OpOutcome, done: usize, total: usize) {
        self(op, outcome, done, total)
    }
}

/// The report of a plan without applying it (no writes).
pub fn simulate(plan: &Plan) -> Report {
    Report::build(plan, RunMode::Simulate, None, None)
}

/// What failed earlier in the run, so later operations that depend on it are skipped.
#[derive(Default)]
struct Failed {
    /// Source IDs whose create / adopt / rename failed.
    users: HashSet<String>,
    /// Username keys those operations would have produced.
    names: HashSet<String>,
    /// Group name keys whose create / adopt failed.
    groups: HashSet<String>,
}

impl Failed {
    fn record(&mut self, op: &Operation) {
        match &op.kind {
            OpKind::CreateUser { source_id, account } => {
                self.users.insert(source_id.clone());
                self.names.insert(name_key(&account.username));
            }
            OpKind::AdoptUser {
                source_id,
                username,
                ..
            } => {
                self.users.insert(source_id.clone());
                self.names.insert(name_key(username));
            }
            OpKind::RenameUser { source_id, to, .. } => {
                self.users.insert(source_id.clone());
                self.names.insert(name_key(to));
            }
            OpKind::CreateGroup { name, .. } | OpKind::AdoptGroup { name, .. } => {
                self.groups.insert(name_key(name));
            }
            _ => {}
        }
    }

    /// Why `op` cannot run, if a prerequisite failed.
    fn blocks(&self, op: &Operation) -> Option<String> {
        let dep = "not attempted: an earlier operation it depends on failed";
        match &op.kind {
            OpKind::AddMembers { group, usernames } => {
                if self.groups.contains(&name_key(group)) {
                    return Some(format!("{dep} (creating group {group})"));
                }
                if !usernames.is_empty()
                    && usernames.iter().all(|u| self.names.contains(&name_key(u)))
                {
                    return Some(format!("{dep} (creating or renaming the account)"));
                }
                None
            }
            OpKind::RemoveMember { username, .. } => self
                .names
                .contains(&name_key(username))
                .then(|| format!("{dep} (renaming the account)")),
            // Creates and adopts are the prerequisites themselves.
            OpKind::CreateUser { .. } | OpKind::AdoptUser { .. } => None,
            k => k
                .source_id()
                .filter(|sid| k.is_user_op() && self.users.contains(*sid))
                .map(|_| format!("{dep} (creating, adopting or renaming the account)")),
        }
    }
}

fn ignore_not_found(r: Result<(), ConnectorError>) -> Result<(), ConnectorError> {
    match r {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Consecutive 403 answers (with no successful write in between) that stop an apply.
pub const FORBIDDEN_STREAK_STOPS: usize = 3;

/// Shared state of one apply.
struct Run<'a> {
    target: &'a dyn TargetDirectory,
    photos: &'a dyn SourceDirectory,
    journal: &'a dyn ApplyJournal,
    progress: &'a dyn Progress,
    caps: TargetCapabilities,
    stop: AtomicBool,
    stop_reason: Mutex<Option<String>>,
    done: AtomicUsize,
    total: usize,
    /// 403 answers since the last successful write.
    forbidden_streak: AtomicUsize,
}

impl Run<'_> {
    fn halt(&self, reason: String) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_reason
            .lock()
            .expect("stop lock")
            .get_or_insert(reason);
    }

    /// The target write of `op`; `members` is an `AddMembers` batch without failed users.
    async fn write(&self, op: &Operation, members: &[String]) -> Result<OpOutcome, ConnectorError> {
        if let Some(outcome) = recheck(self.target, &self.caps, &op.kind).await? {
            return Ok(outcome);
        }
        let t = self.target;
        let applied = OpOutcome::Applied { target_key: None };
        match &op.kind {
            OpKind::CreateUser { account, .. } => {
                let created = t.create_user(account).await?;
                return Ok(OpOutcome::Applied {
                    target_key: created.key,
                });
            }
            OpKind::AdoptUser { .. } | OpKind::AdoptGroup { .. } => {}
            OpKind::RenameUser { from, to, .. } => t.rename_user(from, to).await?,
            // Account writes carry the key the plan saw, so a product that addresses accounts
            // by key answers "not found" when the name now belongs to another account.
            OpKind::UpdateUser {
                username,
                changes,
                target_key,
                ..
            } => {
                t.update_user_ref(account_ref(username, target_key), changes)
                    .await?
            }
            // Without deactivation the planner already removed the memberships (fallback);
            // the op only records the state in the journal.
            OpKind::ReactivateUser {
                username,
                target_key,
                ..
            } if self.caps.deactivate => {
                t.set_active_ref(account_ref(username, target_key), true)
                    .await?
            }
            OpKind::DeactivateUser {
                username,
                target_key,
                ..
            } if self.caps.deactivate => {
                t.set_active_ref(account_ref(username, target_key), false)
                    .await?
            }
            OpKind::ReactivateUser { .. } | OpKind::DeactivateUser { .. } => {}
            // Deletes are idempotent: "not found" means the goal is reached (e.g. a delete
            // whose journal confirmation was lost when a run was killed; by key, the planned
            // account is gone even if its name was given to another account).
            OpKind::DeleteUser {
                username,
                target_key,
                ..
            } => ignore_not_found(t.delete_user_ref(account_ref(username, target_key)).await)?,
            OpKind::CreateGroup { name, .. } => t.create_group(name).await?,
            OpKind::DeleteGroup { name, .. } => ignore_not_found(t.delete_group(name).await)?,
            OpKind::AddMembers { group, .. } => t.add_members(group, members).await?,
            OpKind::RemoveMember { group, username } => t.remove_member(group, username).await?,
            OpKind::SetAvatar {
                source_id,
                username,
                ..
            } => {
                if !self.caps.avatars {
                    return Ok(OpOutcome::Skipped {
                        reason: format!("{} does not support avatars", self.caps.product),
                    });
                }
                match self.photos.photo(source_id).await? {
                    Some(photo) => t.set_avatar(username, &photo).await?,
                    None => {
                        return Ok(OpOutcome::Skipped {
                            reason: "the source user no longer has a profile picture".into(),
                        });
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Runs one operation; `blocked` says why it must be skipped (a prerequisite failed).
    async fn run_one(
        &self,
        op: &Operation,
        blocked: Option<String>,
        members: Vec<String>,
    ) -> OpOutcome {
        let outcome = if self.stop.load(Ordering::SeqCst) {
            let why = self
                .stop_reason
                .lock()
                .expect("stop lock")
                .clone()
                .unwrap_or_default();
            OpOutcome::Skipped {
                reason: format!("not attempted: the run stopped ({why})"),
            }
        } else if let Some(reason) = blocked {
            OpOutcome::Skipped { reason }
        } else if let Err(e) = self.journal.before(op).await {
            // Not written to the target: without a recorded intent the write could not be
            // matched up by the next run. A journal failure is always systemic.
            self.halt(format!("the journal failed: {e}"));
            OpOutcome::Failed {
                kind: ErrorKind::Other,
                message: format!("journal: {e}"),
            }
        } else {
            match self.write(op, &members).await {
                Ok(o) => {
                    self.forbidden_streak.store(0, Ordering::SeqCst);
                    o
                }
                Err(e) => {
                    if e.kind == ErrorKind::Forbidden {
                        let streak = self.forbidden_streak.fetch_add(1, Ordering::SeqCst) + 1;
                        if streak >= FORBIDDEN_STREAK_STOPS {
                            self.halt(format!(
                                "{streak} writes in a row refused with HTTP 403 (the credentials lack the right): {}",
                                e.message
                            ));
                        }
                    } else if e.kind.is_systemic() {
                        self.halt(format!("{:?} error: {}", e.kind, e.message));
                    }
                    OpOutcome::Failed {
                        kind: e.kind,
                        message: e.message,
                    }
                }
            }
        };
        if let Err(e) = self.journal.after(op, &outcome).await {
            self.halt(format!("the journal failed: {e}"));
        }
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        self.progress.on_outcome(op, &outcome, done, self.total);
        outcome
    }
}

/// Applies a plan. Refuses (writes nothing, every op `Skipped`) when the plan is held.
///
/// Operations run in dependency order (see [`Schedule`]) with up to `max_concurrency` at once:
/// an operation starts as soon as the operations it depends on have finished, so the pool is
/// never left idle waiting for unrelated work of an earlier phase. Among ready operations the
/// lowest plan position goes first.
pub async fn apply(
    plan: &Plan,
    target: &dyn TargetDirectory,
    photos: &dyn SourceDirectory,
    journal: &dyn ApplyJournal,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Report {
    if let Some(why) = &plan.held {
        let skipped: Vec<OpOutcome> = plan
            .ops
            .iter()
            .map(|_| OpOutcome::Skipped {
                reason: format!("not attempted: the run is held ({why})"),
            })
            .collect();
        return Report::build(plan, RunMode::Sync, Some(&skipped), None);
    }
    let caps = target.capabilities();
    let concurrency = if opts.max_concurrency > 0 {
        opts.max_concurrency
    } else {
        caps.max_concurrency.max(1)
    };
    let run = Run {
        target,
        photos,
        journal,
        progress,
        caps,
        stop: AtomicBool::new(false),
        stop_reason: Mutex::new(None),
        done: AtomicUsize::new(0),
        total: plan.ops.len(),
        forbidden_streak: AtomicUsize::new(0),
    };
    let mut outcomes: Vec<Option<OpOutcome>> = vec![None; plan.ops.len()];
    let mut failed = Failed::default();
    let mut schedule = Schedule::new(&plan.ops);
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < concurrency {
            let Some(i) = schedule.next_ready() else {
                break;
            };
            let op = &plan.ops[i];
            // Decided at start: every prerequisite has finished and is recorded in `failed`.
            let blocked = failed.blocks(op);
            let members = match &op.kind {
                // Drop users whose create failed; the rest of the batch still goes in.
                OpKind::AddMembers { usernames, .. } if blocked.is_none() => usernames
                    .iter()
                    .filter(|u| !failed.names.contains(&name_key(u)))
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            let run = &run;
            in_flight.push(async move { (i, run.run_one(op, blocked, members).await) });
        }
        let Some((i, outcome)) = in_flight.next().await else {
            break;
        };
        if !matches!(outcome, OpOutcome::Applied { .. }) {
            failed.record(&plan.ops[i]);
        }
        outcomes[i] = Some(outcome);
        schedule.finish(i);
    }
    drop(in_flight);
    let outcomes: Vec<OpOutcome> = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(OpOutcome::Skipped {
                reason: "not attempted".into(),
            })
        })
        .collect();
    let stopped = run.stop_reason.into_inner().expect("stop lock");
    Report::build(plan, RunMode::Sync, Some(&outcomes), stopped)
}

/// What an operation reads or writes, for ordering: two operations of different phases that
/// share a resource run in plan (phase) order; everything else may overlap.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Resource<'a> {
    /// A source user (by object ID): its create/adopt/rename before its update, avatar, etc.
    User(&'a str),
    /// A username (name key): an account's create/rename before its memberships, its
    /// membership removals before its deactivation and deletion, a rename away from a name
    /// before (phase order) anything else using that name.
    Name(String),
    /// A group (name key): its create before its memberships, its membership removals before
    /// its deletion.
    Group(String),
}

fn resources<'a>(kind: &'a OpKind, out: &mut Vec<Resource<'a>>) {
    match kind {
        OpKind::CreateUser { source_id, account } => {
            out.push(Resource::User(source_id));
            out.push(Resource::Name(name_key(&account.username)));
        }
        OpKind::RenameUser {
            source_id,
            from,
            to,
            ..
        } => {
            out.push(Resource::User(source_id));
            out.push(Resource::Name(name_key(from)));
            out.push(Resource::Name(name_key(to)));
        }
        OpKind::AdoptUser {
            source_id,
            username,
            ..
        }
        | OpKind::UpdateUser {
            source_id,
            username,
            ..
        }
        | OpKind::ReactivateUser {
            source_id,
            username,
            ..
        }
        | OpKind::DeactivateUser {
            source_id,
            username,
            ..
        }
        | OpKind::DeleteUser {
            source_id,
            username,
            ..
        }
        | OpKind::SetAvatar {
            source_id,
            username,
            ..
        } => {
            out.push(Resource::User(source_id));
            out.push(Resource::Name(name_key(username)));
        }
        OpKind::CreateGroup { name, .. }
        | OpKind::AdoptGroup { name, .. }
        | OpKind::DeleteGroup { name, .. } => out.push(Resource::Group(name_key(name))),
        OpKind::AddMembers { group, usernames } => {
            out.push(Resource::Group(name_key(group)));
            out.extend(usernames.iter().map(|u| Resource::Name(name_key(u))));
        }
        OpKind::RemoveMember { group, username } => {
            out.push(Resource::Group(name_key(group)));
            out.push(Resource::Name(name_key(username)));
        }
    }
}

/// The dependency graph of a plan's operations and which of them may start.
///
/// For each [`Resource`], the operations touching it form runs of one phase in plan order; an
/// operation depends on every operation of the resource's previous run (through one join node
/// when that run has several, so a group with many membership adds followed by many removals
/// costs adds + removals edges, not their product). Same-phase operations never wait for each
/// other, exactly as inside a phase before; nothing waits for unrelated work.
struct Schedule {
    /// Operations in the plan; nodes `ops..` are join nodes (no work).
    ops: usize,
    /// Unfinished prerequisites per node.
    pending: Vec<u32>,
    /// Dependents of node `i`: `edges[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    edges: Vec<u32>,
    /// Operations whose prerequisites have all finished, lowest plan position first.
    ready: BinaryHeap<Reverse<u32>>,
}

impl Schedule {
    fn new(plan_ops: &[Operation]) -> Self {
        struct Run {
            phase: Phase,
            members: Vec<u32>,
            gate: Option<u32>,
        }
        let ops = plan_ops.len();
        let mut nodes = ops as u32;
        let mut runs: HashMap<Resource<'_>, Run> = HashMap::new();
        let mut list: Vec<(u32, u32)> = Vec::new();
        let mut touched = Vec::new();
        for (j, op) in plan_ops.iter().enumerate() {
            let j = j as u32;
            let phase = op.kind.phase();
            resources(&op.kind, &mut touched);
            for r in touched.drain(..) {
                let run = runs.entry(r).or_insert(Run {
                    phase,
                    members: Vec::new(),
                    gate: None,
                });
                if run.phase != phase {
                    let gate = if let [only] = run.members[..] {
                        only
                    } else {
                        let join = nodes;
                        nodes += 1;
                        list.extend(run.members.iter().map(|&m| (m, join)));
                        join
                    };
                    run.members.clear();
                    run.gate = Some(gate);
                    run.phase = phase;
                }
                if let Some(g) = run.gate {
                    list.push((g, j));
                }
                run.members.push(j);
            }
        }
        drop(runs);
        list.sort_unstable();
        list.dedup();
        let n = nodes as usize;
        let mut pending = vec![0u32; n];
        let mut offsets = vec![0usize; n + 1];
        for &(from, to) in &list {
            offsets[from as usize + 1] += 1;
            pending[to as usize] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let edges = list.into_iter().map(|(_, to)| to).collect();
        let ready = (0..ops as u32)
            .filter(|&i| pending[i as usize] == 0)
            .map(Reverse)
            .collect();
        Self {
            ops,
            pending,
            offsets,
            edges,
            ready,
        }
    }

    /// The next operation that may start, if any.
    fn next_ready(&mut self) -> Option<usize> {
        self.ready.pop().map(|Reverse(i)| i as usize)
    }

    /// Marks operation `i` finished (whatever its outcome) and releases its dependents.
    fn finish(&mut self, i: usize) {
        let mut stack = vec![i];
        while let Some(node) = stack.pop() {
            for &d in &self.edges[self.offsets[node]..self.offsets[node + 1]] {
                let p = &mut self.pending[d as usize];
                *p -= 1;
                if *p == 0 {
                    if (d as usize) < self.ops {
                        self.ready.push(Reverse(d));
                    } else {
                        stack.push(d as usize);
                    }
                }
            }
        }
    }
}

/// The [`AccountRef`] an account op addresses.
fn account_ref<'a>(username: &'a str, key: &'a Option<String>) -> AccountRef<'a> {
    AccountRef {
        username,
        key: key.as_deref(),
    }
}

/// Re-reads the object a destructive operation (deactivate, delete user, remove membership,
/// delete group) is about, just before the write, so a plan made from stale data (an
/// incremental run's stored target state, or an admin's change since the read) never removes
/// the wrong thing. `Ok(None)`: the target agrees with the plan, write. `Ok(Some(outcome))`:
/// do not write — `Skipped` with the reason when the target disagrees, `Applied` when the goal
/// already holds (already inactive, already deleted: the journal then records it, which the
/// delete grace period and the link table need). A target that cannot read single objects
/// (`Unsupported`) is written as planned: such a target is only planned from a full read.
async fn recheck(
    t: &dyn TargetDirectory,
    caps: &TargetCapabilities,
    op: &OpKind,
) -> Result<Option<OpOutcome>, ConnectorError> {
    let skip = |reason: String| {
        Ok(Some(OpOutcome::Skipped {
            reason: format!("not written: re-read before the write, {reason}"),
        }))
    };
    let done = || Ok(Some(OpOutcome::Applied { target_key: None }));
    match op {
        OpKind::DeactivateUser {
            username,
            target_key,
            ..
        }
        | OpKind::DeleteUser {
            username,
            target_key,
            ..
        } => {
            let is_delete = matches!(op, OpKind::DeleteUser { .. });
            // Without deactivation the op writes nothing (the planner removed the memberships).
            if !is_delete && !caps.deactivate {
                return Ok(None);
            }
            let r = t.read_account(username).await;
            if unsupported(&r) {
                return Ok(None);
            }
            match r? {
                None if is_delete => done(),
                None => skip(format!("the target has no account {username} any more")),
                Some(a) if key_differs(target_key.as_deref(), a.key.as_deref()) => skip(format!(
                    "account {username} now has key {} where the plan saw {} (another account holds the name)",
                    a.key.as_deref().unwrap_or("-"),
                    target_key.as_deref().unwrap_or("-")
                )),
                Some(a) if !is_delete && !a.active => done(),
                Some(_) => Ok(None),
            }
        }
        OpKind::RemoveMember { group, username } => {
            let r = t.read_account(username).await;
            if unsupported(&r) {
                return Ok(None);
            }
            match r? {
                None => skip(format!("the target has no account {username} any more")),
                Some(a) if !a.groups.iter().any(|g| name_key(g) == name_key(group)) => {
                    skip(format!("{username} is not a member of {group} any more"))
                }
                Some(_) => Ok(None),
            }
        }
        OpKind::DeleteGroup { name, .. } => {
            let r = t.group_exists(name).await;
            if unsupported(&r) {
                return Ok(None);
            }
            if r? { Ok(None) } else { done() }
        }
        _ => Ok(None),
    }
}

/// True when the target cannot read single objects.
fn unsupported<T>(r: &Result<T, ConnectorError>) -> bool {
    matches!(r, Err(e) if e.kind == ErrorKind::Unsupported)
}

/// True when both keys are known and differ.
fn key_differs(planned: Option<&str>, now: Option<&str>) -> bool {
    matches!((planned, now), (Some(p), Some(n)) if p != n)
}
