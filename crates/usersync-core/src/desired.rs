//! The desired state: the accounts, groups and memberships the source says the target should
//! have, after mapping and scope. Users whose name cannot be mapped, or whose names collide, are
//! reported here and left out (the planner leaves their existing accounts untouched).

use crate::config::SyncSettings;
use crate::mapping::map_user;
use crate::model::{SourceSnapshot, name_key};
use crate::plan::{AccountSpec, Conflict, ConflictKind, SkippedUser};
use crate::ports::TargetCapabilities;
use crate::scope::{ScopeError, resolve_scope};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A source user as the target should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    /// Source object ID.
    pub source_id: String,
    /// Source UPN (for reports).
    pub upn: String,
    /// Username, display name and e-mail.
    pub account: AccountSpec,
    /// `accountEnabled` at the source.
    pub enabled: bool,
    /// Change tag of the source profile picture.
    pub photo_tag: Option<String>,
}

/// A group as the target should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// Source object ID.
    pub source_id: String,
    /// Target group name.
    pub name: String,
    /// Member users (only users present in [`DesiredState::users`]), as indexes into the
    /// `users` of the snapshot the state was built from: sorted, unique, four bytes each.
    pub members: Vec<u32>,
}

/// Everything the planner needs from the source side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Synced users by source ID.
    pub users: BTreeMap<String, DesiredUser>,
    /// Synced groups by source ID.
    pub groups: BTreeMap<String, DesiredGroup>,
    /// IDs of every user in the source read (in scope or not), to tell "deleted" from
    /// "out of scope".
    pub source_user_ids: BTreeSet<String>,
    /// IDs of every group in the source read.
    pub source_group_ids: BTreeSet<String>,
    /// In-scope users left out (conflict or skipped); their accounts are left untouched.
    pub blocked_users: BTreeSet<String>,
    /// In-scope groups left out (conflict); their target groups are left untouched.
    pub blocked_groups: BTreeSet<String>,
    /// Conflicts found while mapping and scoping.
    pub conflicts: Vec<Conflict>,
    /// Users skipped because no valid username could be derived.
    pub skipped: Vec<SkippedUser>,
}

/// Builds the desired state from a source snapshot.
pub fn desired_state(
    source: &SourceSnapshot,
    settings: &SyncSettings,
    caps: &TargetCapabilities,
) -> Result<DesiredState, ScopeError> {
    let scope = resolve_scope(source, &settings.scope)?;
    let mut out = DesiredState {
        source_user_ids: source.users.iter().map(|u| u.id.clone()).collect(),
        source_group_ids: source.groups.iter().map(|g| g.id.clone()).collect(),
        blocked_groups: scope.blocked_groups,
        conflicts: scope.conflicts,
        ..DesiredState::default()
    };

    // Map every in-scope user, grouping by username key to find collisions.
    let mut by_name: HashMap<String, Vec<DesiredUser>> = HashMap::new();
    for u in source
        .users
        .iter()
        .zip(&scope.users)
        .filter_map(|(u, &in_scope)| in_scope.then_some(u))
    {
        match map_user(u, &settings.mapping, caps) {
            Ok(account) => by_name
                .entry(name_key(&account.username))
                .or_default()
                .push(DesiredUser {
                    source_id: u.id.clone(),
                    upn: u.upn.clone(),
                    account,
                    enabled: u.enabled,
                    photo_tag: u.photo.as_ref().map(|p| p.tag.clone()),
                }),
            Err(reason) => {
                out.blocked_users.insert(u.id.clone());
                out.skipped.push(SkippedUser {
                    source_id: u.id.clone(),
                    upn: u.upn.clone(),
                    username: None,
                    reason,
                });
            }
        }
    }
    for (_, mut users) in by_name {
        if users.len() == 1 {
            let u = users.pop().expect("one user");
            out.users.insert(u.source_id.clone(), u);
            continue;
        }
        users.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        let upns: Vec<&str> = users.iter().map(|u| u.upn.as_str()).collect();
        out.conflicts.push(Conflict {
            kind: ConflictKind::DuplicateUsername,
            name: users[0].account.username.clone(),
            source_ids: users.iter().map(|u| u.source_id.clone()).collect(),
            detail: format!(
                "{} source users map to the same username ({}); neither is synced and existing \
                 accounts are left untouched until the mapping or the source is fixed",
                users.len(),
                upns.join(", ")
            ),
        });
        out.blocked_users
            .extend(users.into_iter().map(|u| u.source_id));
    }
    out.skipped.sort_by(|a, b| a.source_id.cmp(&b.source_id));

    // By index: this touches every membership (millions at scale).
    let synced: Vec<bool> = source
        .users
        .iter()
        .map(|u| out.users.contains_key(&u.id))
        .collect();
    let groups: BTreeMap<String, DesiredGroup> = scope
        .groups
        .into_iter()
        .map(|(id, g)| {
            let mut members = g.members;
            members.retain(|&m| synced[m as usize]);
            members.shrink_to_fit();
            (
                id,
                DesiredGroup {
                    source_id: g.source_id,
                    name: g.name,
                    members,
                },
            )
        })
        .collect();
    drop(synced);
    out.groups = groups;
    Ok(out)
}
