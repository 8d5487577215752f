//! Simulate and apply. One code path: [`simulate`] is the report of a plan without outcomes;
//! [`apply`] runs the plan phase by phase (bounded concurrency inside a phase, runtime-agnostic
//! via `futures`), journals every operation, keeps going past per-item errors, stops on
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
use crate::plan::{OpKind, OpOutcome, Operation, Plan};
use crate::ports::{
    AccountRef, ApplyJournal, ConnectorError, ErrorKind, SourceDirectory, TargetCapabilities,
    TargetDirectory,
};
use crate::report::{Report, RunMode};
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Apply settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Concurrent writes within a phase; 0 uses the target's `max_concurrency` (at least 1).
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

    async fn write(&self, op: &Operation, failed: &Failed) -> Result<OpOutcome, ConnectorError> {
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
            OpKind::AddMembers { group, usernames } => {
                // Drop users whose create failed; the rest of the batch still goes in.
                let ok: Vec<String> = usernames
                    .iter()
                    .filter(|u| !failed.names.contains(&name_key(u)))
                    .cloned()
                    .collect();
                t.add_members(group, &ok).await?
            }
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

    async fn run_one(&self, op: &Operation, failed: &Failed) -> OpOutcome {
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
        } else if let Some(reason) = failed.blocks(op) {
            OpOutcome::Skipped { reason }
        } else if let Err(e) = self.journal.before(op).await {
            self.halt(format!("the journal failed: {e}"));
            OpOutcome::Failed {
                kind: e.kind,
                message: format!("journal: {e}"),
            }
        } else {
            match self.write(op, failed).await {
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
/// Phases run in plan order; inside a phase up to `max_concurrency` operations run at once.
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
    let mut start = 0;
    while start < plan.ops.len() {
        let phase = plan.ops[start].kind.phase();
        let end = plan.ops[start..]
            .iter()
            .position(|o| o.kind.phase() != phase)
            .map_or(plan.ops.len(), |n| start + n);
        let results: Vec<(usize, OpOutcome)> = {
            let (run, failed) = (&run, &failed);
            futures::stream::iter(start..end)
                .map(|i| async move { (i, run.run_one(&plan.ops[i], failed).await) })
                .buffer_unordered(concurrency)
                .collect()
                .await
        };
        for (i, outcome) in results {
            if !matches!(outcome, OpOutcome::Applied { .. }) {
                failed.record(&plan.ops[i]);
            }
            outcomes[i] = Some(outcome);
        }
        start = end;
    }
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
