//! How an apply updates the link table, as pure functions the store reuses
//! ([`record_intent`] before a write, [`apply_outcome_to_links`] after it), and
//! [`MemoryJournal`], an in-memory [`ApplyJournal`] built on them.
//!
//! The rules make an apply killed at any point converge: a create or rename is recorded as
//! *pending* before the write, so the next plan finds the account under either name and never
//! creates a duplicate.

use crate::link::{GroupLink, LinkTable, UserLink};
use crate::model::name_key;
use crate::plan::{OpKind, OpOutcome, Operation};
use crate::ports::{ApplyJournal, ErrorKind, JournalError};
use async_trait::async_trait;
use std::sync::Mutex;

/// Records what an operation is about to write. Call before the target write.
pub fn record_intent(links: &mut LinkTable, op: &Operation) {
    match &op.kind {
        OpKind::CreateUser { source_id, account } => {
            let link = links
                .users
                .entry(source_id.clone())
                .or_insert_with(|| UserLink {
                    source_id: source_id.clone(),
                    username: account.username.clone(),
                    target_key: None,
                    pending_username: None,
                    deactivated_at_ms: None,
                    photo_tag: None,
                });
            link.pending_username = Some(account.username.clone());
        }
        OpKind::RenameUser { source_id, to, .. } => {
            if let Some(link) = links.users.get_mut(source_id) {
                link.pending_username = Some(to.clone());
            }
        }
        OpKind::CreateGroup { source_id, name } => {
            links.groups.insert(
                source_id.clone(),
                GroupLink {
                    source_id: source_id.clone(),
                    name: name.clone(),
                    pending: true,
                },
            );
        }
        _ => {}
    }
}

/// True when a failure may still have been written (timeouts, 5xx): the pending state is kept
/// so the next plan checks the target instead of assuming either way.
fn ambiguous(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unreachable | ErrorKind::Other)
}

/// Updates the links after an operation. `now_ms` stamps deactivations (delete grace period).
/// `Skipped` outcomes change nothing (the write was never attempted).
pub fn apply_outcome_to_links(
    links: &mut LinkTable,
    op: &Operation,
    outcome: &OpOutcome,
    now_ms: i64,
) {
    let failed_kind = match outcome {
        OpOutcome::Applied { .. } => None,
        OpOutcome::Failed { kind, .. } => Some(*kind),
        OpOutcome::Skipped { .. } => return,
    };
    if let Some(kind) = failed_kind {
        // Roll back a pending intent when the target definitely refused the write.
        if ambiguous(kind) {
            return;
        }
        match &op.kind {
            OpKind::CreateUser { source_id, account } => {
                // A conflict means an account exists under the name (often this run's own
                // earlier POST whose answer was lost): keep the pending link, so the next plan
                // finds the account under the pending name and confirms it.
                if kind == ErrorKind::Conflict {
                    return;
                }
                let Some(l) = links.users.get_mut(source_id) else {
                    return;
                };
                // A link made by this intent carries nothing else: forget it, the next plan
                // creates again. A pre-existing link (re-create of a missing account) keeps
                // its key, deactivation stamp and photo tag; only the intent is withdrawn.
                let made_by_intent = l.target_key.is_none()
                    && l.deactivated_at_ms.is_none()
                    && l.photo_tag.is_none()
                    && name_key(&l.username) == name_key(&account.username);
                if made_by_intent {
                    links.users.remove(source_id);
                } else {
                    l.pending_username = None;
                }
            }
            OpKind::RenameUser { source_id, .. } => {
                if let Some(l) = links.users.get_mut(source_id) {
                    l.pending_username = None;
                }
            }
            // As for accounts: a conflict means the group exists now; keep the pending link so
            // the next plan confirms it.
            OpKind::CreateGroup { source_id, .. }
                if kind != ErrorKind::Conflict
                    && links.groups.get(source_id).is_some_and(|g| g.pending) =>
            {
                links.groups.remove(source_id);
            }
            _ => {}
        }
        return;
    }
    let applied_key = match outcome {
        OpOutcome::Applied { target_key } => target_key.clone(),
        _ => None,
    };
    match &op.kind {
        OpKind::CreateUser { source_id, account } => {
            links.users.insert(
                source_id.clone(),
                UserLink {
                    source_id: source_id.clone(),
                    username: account.username.clone(),
                    target_key: applied_key,
                    pending_username: None,
                    deactivated_at_ms: None,
                    photo_tag: None,
                },
            );
        }
        OpKind::AdoptUser {
            source_id,
            username,
            target_key,
        } => {
            let link = links
                .users
                .entry(source_id.clone())
                .or_insert_with(|| UserLink {
                    source_id: source_id.clone(),
                    username: username.clone(),
                    target_key: None,
                    pending_username: None,
                    deactivated_at_ms: None,
                    photo_tag: None,
                });
            link.username = username.clone();
            link.pending_username = None;
            if target_key.is_some() {
                link.target_key = target_key.clone();
            }
        }
        OpKind::RenameUser { source_id, to, .. } => {
            if let Some(l) = links.users.get_mut(source_id) {
                l.username = to.clone();
                l.pending_username = None;
            }
        }
        OpKind::DeactivateUser { source_id, .. } => {
            if let Some(l) = links.users.get_mut(source_id) {
                // The planner deactivates a stamped account only when it found it active
                // again (an admin reactivated it), so the old stamp is stale: the grace period
                // runs from this deactivation.
                l.deactivated_at_ms = Some(now_ms);
            }
        }
        OpKind::ReactivateUser { source_id, .. } => {
            if let Some(l) = links.users.get_mut(source_id) {
                l.deactivated_at_ms = None;
            }
        }
        OpKind::DeleteUser { source_id, .. } => {
            links.users.remove(source_id);
        }
        OpKind::SetAvatar {
            source_id,
            photo_tag,
            ..
        } => {
            if let Some(l) = links.users.get_mut(source_id) {
                l.photo_tag = Some(photo_tag.clone());
            }
        }
        OpKind::CreateGroup { source_id, name } | OpKind::AdoptGroup { source_id, name } => {
            if matches!(op.kind, OpKind::AdoptGroup { .. }) {
                // A takeover: the departed source group's link to this group goes.
                let key = name_key(name);
                links
                    .groups
                    .retain(|sid, g| sid == source_id || name_key(&g.name) != key);
            }
            links.groups.insert(
                source_id.clone(),
                GroupLink {
                    source_id: source_id.clone(),
                    name: name.clone(),
                    pending: false,
                },
            );
        }
        OpKind::DeleteGroup { source_id, name } => {
            // A group renamed at the source has a new link under the same ID: keep it.
            if links
                .groups
                .get(source_id)
                .is_some_and(|g| name_key(&g.name) == name_key(name))
            {
                links.groups.remove(source_id);
            }
        }
        OpKind::UpdateUser { .. } | OpKind::AddMembers { .. } | OpKind::RemoveMember { .. } => {}
    }
}

/// An in-memory [`ApplyJournal`]: the link table plus a log of outcomes. Used by tests and by
/// simulations that want the links an apply would leave.
#[derive(Debug)]
pub struct MemoryJournal {
    links: Mutex<LinkTable>,
    log: Mutex<Vec<(Operation, OpOutcome)>>,
    now_ms: i64,
}

impl MemoryJournal {
    /// Starts from `links`; `now_ms` stamps deactivations.
    pub fn new(links: LinkTable, now_ms: i64) -> Self {
        Self {
            links: Mutex::new(links),
            log: Mutex::new(Vec::new()),
            now_ms,
        }
    }

    /// The link table now.
    pub fn link_table(&self) -> LinkTable {
        self.links.lock().expect("journal lock").clone()
    }

    /// Every `(operation, outcome)` recorded by `after`, in call order.
    pub fn outcomes(&self) -> Vec<(Operation, OpOutcome)> {
        self.log.lock().expect("journal lock").clone()
    }
}

#[async_trait]
impl ApplyJournal for MemoryJournal {
    async fn before(&self, op: &Operation) -> Result<(), JournalError> {
        record_intent(&mut self.links.lock().expect("journal lock"), op);
        Ok(())
    }

    async fn after(&self, op: &Operation, outcome: &OpOutcome) -> Result<(), JournalError> {
        apply_outcome_to_links(
            &mut self.links.lock().expect("journal lock"),
            op,
            outcome,
            self.now_ms,
        );
        self.log
            .lock()
            .expect("journal lock")
            .push((op.clone(), outcome.clone()));
        Ok(())
    }

    async fn links(&self) -> Result<LinkTable, JournalError> {
        Ok(self.link_table())
    }
}
