//! How the journal changes the link table, as pure functions with the signatures of the
//! engine's shared ones (`record_intent`, `apply_outcome_to_links`), so the store can switch to
//! those without changing its I/O. The store runs them on a small [`LinkTable`] holding only the
//! links the operation touches, then writes back the difference.

use usersync_core::link::{GroupLink, LinkTable, UserLink};
use usersync_core::plan::{OpKind, OpOutcome, Operation};

/// Records the intent of `op` before its write: a pending link for a create, the pending new
/// name for a rename. Other operations change nothing before their write.
pub fn record_intent(links: &mut LinkTable, op: &Operation) {
    match &op.kind {
        OpKind::CreateUser { source_id, account } => {
            let username = account.username.clone();
            links
                .users
                .entry(source_id.clone())
                .and_modify(|l| l.pending_username = Some(username.clone()))
                .or_insert_with(|| UserLink {
                    source_id: source_id.clone(),
                    username: username.clone(),
                    target_key: None,
                    pending_username: Some(username.clone()),
                    deactivated_at_ms: None,
                    photo_tag: None,
                });
        }
        OpKind::RenameUser { source_id, to, .. } => {
            if let Some(link) = links.users.get_mut(source_id) {
                link.pending_username = Some(to.clone());
            }
        }
        OpKind::CreateGroup { source_id, name } => {
            links
                .groups
                .entry(source_id.clone())
                .and_modify(|g| g.pending = true)
                .or_insert_with(|| GroupLink { source_id: source_id.clone(), name: name.clone(), pending: true });
        }
        _ => {}
    }
}

/// Applies the outcome of `op` to the links. `Skipped` is treated like `Failed` (nothing was
/// written); the store only calls this for a skipped operation whose intent it recorded.
pub fn apply_outcome_to_links(links: &mut LinkTable, op: &Operation, outcome: &OpOutcome, now_ms: i64) {
    let applied_key = match outcome {
        OpOutcome::Applied { target_key } => Some(target_key.clone()),
        OpOutcome::Failed { .. } | OpOutcome::Skipped { .. } => None,
    };
    match (&op.kind, applied_key) {
        (OpKind::CreateUser { source_id, account }, Some(target_key)) => {
            links.users.insert(
                source_id.clone(),
                UserLink {
                    source_id: source_id.clone(),
                    username: account.username.clone(),
                    target_key,
                    pending_username: None,
                    deactivated_at_ms: None,
                    photo_tag: None,
                },
            );
        }
        (OpKind::CreateUser { source_id, .. }, None) => {
            // Drop the link if it was only ever an intent; keep (and clear) a confirmed one.
            if let Some(link) = links.users.get_mut(source_id) {
                if link.pending_username.as_deref() == Some(link.username.as_str()) {
                    links.users.remove(source_id);
                } else {
                    link.pending_username = None;
                }
            }
        }
        (OpKind::AdoptUser { source_id, username, target_key }, Some(_)) => {
            links.users.insert(
                source_id.clone(),
                UserLink {
                    source_id: source_id.clone(),
                    username: username.clone(),
                    target_key: target_key.clone(),
                    pending_username: None,
                    deactivated_at_ms: None,
                    photo_tag: None,
                },
            );
        }
        (OpKind::RenameUser { source_id, to, .. }, applied) => {
            if let Some(link) = links.users.get_mut(source_id) {
                if applied.is_some() {
                    link.username = to.clone();
                }
                link.pending_username = None;
            }
        }
        (OpKind::DeactivateUser { source_id, .. }, Some(_)) => {
            if let Some(link) = links.users.get_mut(source_id) {
                link.deactivated_at_ms = Some(now_ms);
            }
        }
        (OpKind::ReactivateUser { source_id, .. }, Some(_)) => {
            if let Some(link) = links.users.get_mut(source_id) {
                link.deactivated_at_ms = None;
            }
        }
        (OpKind::DeleteUser { source_id, .. }, Some(_)) => {
            links.users.remove(source_id);
        }
        (OpKind::SetAvatar { source_id, photo_tag, .. }, Some(_)) => {
            if let Some(link) = links.users.get_mut(source_id) {
                link.photo_tag = Some(photo_tag.clone());
            }
        }
        (OpKind::CreateGroup { source_id, name }, Some(_)) => {
            links
                .groups
                .insert(source_id.clone(), GroupLink { source_id: source_id.clone(), name: name.clone(), pending: false });
        }
        (OpKind::CreateGroup { source_id, .. }, None) => {
            if links.groups.get(source_id).is_some_and(|g| g.pending) {
                links.groups.remove(source_id);
            }
        }
        (OpKind::DeleteGroup { source_id, .. }, Some(_)) => {
            links.groups.remove(source_id);
        }
        _ => {}
    }
}

/// The source object ID whose user link an operation may touch.
pub(crate) fn user_source_id(op: &Operation) -> Option<&str> {
    match &op.kind {
        OpKind::CreateUser { source_id, .. }
        | OpKind::AdoptUser { source_id, .. }
        | OpKind::RenameUser { source_id, .. }
        | OpKind::UpdateUser { source_id, .. }
        | OpKind::ReactivateUser { source_id, .. }
        | OpKind::DeactivateUser { source_id, .. }
        | OpKind::DeleteUser { source_id, .. }
        | OpKind::SetAvatar { source_id, .. } => Some(source_id),
        _ => None,
    }
}

/// The source object ID whose group link an operation may touch.
pub(crate) fn group_source_id(op: &Operation) -> Option<&str> {
    match &op.kind {
        OpKind::CreateGroup { source_id, .. } | OpKind::DeleteGroup { source_id, .. } => Some(source_id),
        _ => None,
    }
}
