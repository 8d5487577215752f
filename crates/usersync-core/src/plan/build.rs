//! The planner proper: the shared state ([`Planner`]) and [`plan_desired`], which runs the steps
//! in order (links → groups → users → leavers → memberships → guard, one file each) and sorts
//! the result. Internal indexes are hash maps for speed; everything that reaches the plan is
//! sorted, so the output is deterministic.

use super::groups::plan_groups;
use super::guard::{GuardFigures, check_guard};
use super::leavers::plan_leavers;
use super::links::resolve_links;
use super::memberships::plan_memberships;
use super::users::plan_users;
use super::{Conflict, OpKind, Operation, Phase, Plan, PlanCounts, PlanInput, SkippedUser};
use crate::config::LeaverAction;
use crate::desired::DesiredState;
use crate::link::UserLink;
use crate::model::{TargetAccount, name_key};
use std::collections::{HashMap, HashSet};

pub(super) const DAY_MS: i64 = 86_400_000;

/// How the membership step treats a managed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// In scope and enabled: managed groups per the source, plus every access group.
    Active,
    /// Disabled at the source: managed groups per the source, access groups left alone.
    Disabled,
    /// Leaver being / already deactivated: removed from managed groups, access left alone.
    Leaver,
    /// Deactivation fallback: removed from every managed and access group.
    Fallback,
    /// Memberships untouched (kept leaver, protected, deleted, incomplete read).
    Frozen,
}

/// A user whose memberships the planner maintains.
pub(super) struct MUser<'a> {
    pub(super) source_id: &'a str,
    /// Username once this plan's renames are done.
    pub(super) name: String,
    /// Existing account, if any (None for accounts created by this plan).
    pub(super) account: Option<usize>,
    pub(super) mode: Mode,
    pub(super) protected: bool,
    /// Why the user is leaving (for removal reasons).
    pub(super) why: String,
    /// In the desired state (false for leavers).
    pub(super) synced: bool,
}

/// A group target memberships are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum GRef {
    Managed(usize),
    Access(usize),
}

pub(super) struct MGroup<'a> {
    /// Target name (existing case, or the name it will be created with).
    pub(super) name: String,
    /// Member users, as indexes into the source snapshot's users (see [`DesiredGroup`]).
    ///
    /// [`DesiredGroup`]: crate::desired::DesiredGroup
    pub(super) members: &'a [u32],
}

pub(super) struct Planner<'a> {
    pub(super) input: &'a PlanInput<'a>,
    /// The desired state (mapping ∘ scope).
    pub(super) desired: &'a DesiredState,
    pub(super) by_name: HashMap<String, usize>,
    pub(super) by_key: HashMap<&'a str, usize>,
    pub(super) owner: HashMap<usize, &'a str>,
    pub(super) protected: HashSet<String>,
    /// Operations in the order the steps produce them (`seq` is set once they are sorted).
    pub(super) ops: Vec<Operation>,
    pub(super) touched: HashSet<String>,
    pub(super) conflicts: Vec<Conflict>,
    pub(super) conflict_accounts: HashSet<usize>,
    pub(super) skipped: Vec<SkippedUser>,
    pub(super) warnings: Vec<String>,
    pub(super) withheld: usize,
}

impl<'a> Planner<'a> {
    pub(super) fn push(&mut self, kind: OpKind, reason: impl Into<String>) {
        // Only user ops mark a user as touched; group ops carry group IDs.
        if let Some(sid) = kind.source_id().filter(|_| kind.is_user_op()) {
            self.touched.insert(sid.to_string());
        }
        self.ops.push(Operation {
            seq: 0,
            kind,
            reason: reason.into(),
        });
    }

    pub(super) fn is_protected(&self, username: &str) -> bool {
        self.protected.contains(&name_key(username))
    }

    /// Finds a linked account: by target key, then the pending name, then the known name. A
    /// name match whose account has a different key than the link is another account that
    /// reuses the name (the linked one was deleted), never the linked one.
    pub(super) fn find(&self, link: &UserLink) -> Option<usize> {
        if let Some(i) = link.target_key.as_deref().and_then(|k| self.by_key.get(k)) {
            return Some(*i);
        }
        let accounts = &self.input.target.accounts;
        let same_account =
            |i: &usize| match (link.target_key.as_deref(), accounts[*i].key.as_deref()) {
                (Some(linked), Some(found)) => linked == found,
                _ => true,
            };
        if let Some(i) = link
            .pending_username
            .as_deref()
            .and_then(|p| self.by_name.get(&name_key(p)))
            .filter(|i| same_account(i))
        {
            return Some(*i);
        }
        self.by_name
            .get(&name_key(&link.username))
            .filter(|i| same_account(i))
            .copied()
    }

    pub(super) fn is_active(&self, account: &TargetAccount, link: Option<&UserLink>) -> bool {
        if self.input.capabilities.deactivate {
            account.active
        } else {
            // Without deactivation the link records usersync's fallback deactivation.
            link.is_none_or(|l| l.deactivated_at_ms.is_none())
        }
    }

    pub(super) fn fallback_note(&self) -> String {
        format!(
            "; {} cannot deactivate accounts, so the account is removed from every managed and \
             access group instead",
            self.input.capabilities.product
        )
    }
}

/// Plans from an already computed desired state (lets callers time mapping/scope separately).
pub fn plan_desired(input: &PlanInput<'_>, desired: &DesiredState) -> Plan {
    let caps = input.capabilities;
    let policy = &input.settings.policy;
    let complete = input.source.complete;
    let accounts = input.target.accounts.as_slice();

    let mut p = Planner {
        input,
        desired,
        by_name: HashMap::with_capacity(accounts.len()),
        by_key: HashMap::with_capacity(accounts.len()),
        owner: HashMap::with_capacity(input.links.users.len()),
        protected: policy
            .protected_accounts
            .iter()
            .map(|n| name_key(n.trim()))
            .collect(),
        ops: Vec::new(),
        touched: HashSet::new(),
        conflicts: desired.conflicts.clone(),
        conflict_accounts: HashSet::new(),
        skipped: desired.skipped.clone(),
        warnings: input.source.warnings.clone(),
        withheld: 0,
    };
    for (i, a) in accounts.iter().enumerate() {
        p.by_name.insert(name_key(&a.username), i);
        if let Some(k) = a.key.as_deref() {
            p.by_key.insert(k, i);
        }
    }
    if !complete {
        p.warnings.push(
            "the source read was incomplete (some pages failed), so this run removes nothing: no \
             deactivations, deletions, group deletions or membership removals"
                .into(),
        );
    }

    // The steps, in order; each reads the planner's shared indexes and adds operations.
    let links = resolve_links(&mut p);
    let managed_accounts = links.managed_accounts;
    let groups = plan_groups(&mut p);
    let mut musers = plan_users(&mut p, &links);
    musers.extend(plan_leavers(&mut p, &links));
    let maintained_memberships = plan_memberships(&mut p, &groups, &musers);
    let verdict = check_guard(
        &mut p,
        &GuardFigures {
            managed_accounts,
            managed_groups: groups.managed_existing,
            group_deletions: groups.deleted,
            maintained_memberships,
        },
    );
    let (removals, held) = (verdict.removals, verdict.held);

    let unchanged = {
        let mut v: Vec<&MUser<'_>> = musers
            .iter()
            .filter(|m| m.account.is_some() && m.synced && !p.touched.contains(m.source_id))
            .collect();
        v.sort_by_cached_key(|m| (name_key(&m.name), m.source_id));
        v.into_iter().map(|m| m.name.clone()).collect::<Vec<_>>()
    };
    let mut target_only: Vec<&TargetAccount> = accounts
        .iter()
        .enumerate()
        .filter(|(i, _)| !p.owner.contains_key(i) && !p.conflict_accounts.contains(i))
        .map(|(_, a)| a)
        .collect();
    target_only.sort_by_cached_key(|a| (name_key(&a.username), a.username.clone()));
    let target_only: Vec<String> = target_only
        .into_iter()
        .map(|a| a.username.clone())
        .collect();

    let mut ops = std::mem::take(&mut p.ops);
    sort_ops(&mut ops);
    for (seq, op) in ops.iter_mut().enumerate() {
        op.seq = seq as u32;
    }

    let mut conflicts = p.conflicts;
    conflicts.sort();
    let mut skipped = p.skipped;
    skipped.sort();
    let mut counts = PlanCounts {
        source_users: input.source.users.len(),
        source_groups: input.source.groups.len(),
        users_in_scope: desired.users.len() + desired.blocked_users.len(),
        groups_in_scope: desired.groups.len() + desired.blocked_groups.len(),
        target_accounts: accounts.len(),
        managed_accounts,
        users_unchanged: unchanged.len(),
        conflicts: conflicts.len(),
        skipped: skipped.len(),
        target_only: target_only.len(),
        removals_withheld: p.withheld,
        guarded_removals: removals,
        ..PlanCounts::default()
    };
    for op in &ops {
        match &op.kind {
            OpKind::CreateUser { .. } => counts.users_created += 1,
            OpKind::AdoptUser { .. } => counts.users_adopted += 1,
            OpKind::RenameUser { .. } => counts.users_renamed += 1,
            OpKind::UpdateUser { .. } => counts.users_updated += 1,
            OpKind::ReactivateUser { .. } => counts.users_reactivated += 1,
            OpKind::DeactivateUser { .. } => counts.users_deactivated += 1,
            OpKind::DeleteUser { .. } => counts.users_deleted += 1,
            OpKind::CreateGroup { .. } => counts.groups_created += 1,
            OpKind::AdoptGroup { .. } => counts.groups_adopted += 1,
            OpKind::DeleteGroup { .. } => counts.groups_deleted += 1,
            OpKind::AddMembers { usernames, .. } => counts.memberships_added += usernames.len(),
            OpKind::RemoveMember { .. } => counts.memberships_removed += 1,
            OpKind::SetAvatar { .. } => counts.avatars_set += 1,
        }
    }
    if !caps.deactivate && counts.users_deactivated > 0 {
        p.warnings.push(format!(
            "{} cannot deactivate accounts: {} deactivation(s) fall back to removing the account from \
             every managed and access group; the account can still log in if other groups grant access",
            caps.product, counts.users_deactivated
        ));
    }
    if counts.removals_withheld > 0 {
        p.warnings.push(format!(
            "{} removal(s) withheld because the source read was incomplete",
            counts.removals_withheld
        ));
    }
    Plan {
        ops,
        held,
        source_complete: complete,
        product: caps.product.clone(),
        unchanged,
        conflicts,
        skipped,
        target_only,
        warnings: p.warnings,
        counts,
    }
}
pub(super) fn action_name(a: LeaverAction) -> &'static str {
    match a {
        LeaverAction::Deactivate => "deactivate",
        LeaverAction::Delete => "delete",
        LeaverAction::Keep => "keep",
    }
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The names an operation sorts by within its phase (see [`OpKind::sort_name`]): the name it is
/// about, and for memberships the group then the (first) username.
fn sort_parts(kind: &OpKind) -> (&str, Option<&str>) {
    match kind {
        OpKind::CreateUser { account, .. } => (&account.username, None),
        OpKind::AdoptUser { username, .. }
        | OpKind::UpdateUser { username, .. }
        | OpKind::ReactivateUser { username, .. }
        | OpKind::DeactivateUser { username, .. }
        | OpKind::DeleteUser { username, .. }
        | OpKind::SetAvatar { username, .. } => (username, None),
        OpKind::RenameUser { from, .. } => (from, None),
        OpKind::AdoptGroup { name, .. }
        | OpKind::CreateGroup { name, .. }
        | OpKind::DeleteGroup { name, .. } => (name, None),
        OpKind::AddMembers { group, usernames } => (
            group,
            Some(usernames.first().map(String::as_str).unwrap_or_default()),
        ),
        OpKind::RemoveMember { group, username } => (group, Some(username)),
    }
}

/// Interns strings as ids in first-seen order; consecutive repeats (a group's memberships) skip
/// the hash.
struct Interner<'a> {
    of: crate::scope::FastMap<&'a str, u32>,
    strings: Vec<&'a str>,
    last: Option<(&'a str, u32)>,
}

impl<'a> Interner<'a> {
    fn new() -> Self {
        Interner {
            of: crate::scope::fast_map(0),
            strings: Vec::new(),
            last: None,
        }
    }

    fn id(&mut self, s: &'a str) -> u32 {
        if let Some((l, id)) = self.last
            && l == s
        {
            return id;
        }
        let next = self.strings.len() as u32;
        let id = *self.of.entry(s).or_insert(next);
        if id == next {
            self.strings.push(s);
        }
        self.last = Some((s, id));
        id
    }

    /// Rank of each id: equal ranks for equal keys, rank order = key order.
    fn ranks(self, key: impl Fn(&str) -> String) -> Vec<u32> {
        drop(self.of);
        let keys: Vec<String> = self.strings.iter().map(|s| key(s)).collect();
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]));
        let mut rank = vec![0u32; keys.len()];
        let mut r = 0u32;
        for (n, &i) in order.iter().enumerate() {
            if n > 0 && keys[i as usize] != keys[order[n - 1] as usize] {
                r += 1;
            }
            rank[i as usize] = r;
        }
        rank
    }
}

/// Sorts operations into apply order: by phase, then [`OpKind::sort_name`], then source ID;
/// equal keys keep the order the steps produced them. Sorting by `(group, username)` ranks
/// gives the order of the `group\0username` strings as long as no name contains a NUL (then
/// the strings themselves are compared), without building a key string per operation (millions
/// of memberships at scale).
fn sort_ops(ops: &mut [Operation]) {
    fn source_id(op: &Operation) -> &str {
        op.kind.source_id().unwrap_or_default()
    }
    let has_nul = ops.iter().any(|op| {
        let (a, b) = sort_parts(&op.kind);
        a.contains('\0') || b.is_some_and(|b| b.contains('\0'))
    });
    let order: Vec<u32> = if has_nul {
        let mut keyed: Vec<(Phase, String, &str, u32)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                (
                    op.kind.phase(),
                    op.kind.sort_name(),
                    source_id(op),
                    i as u32,
                )
            })
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|k| k.3).collect()
    } else {
        // Ids first (one pass), then ids → ranks in place: one 20-byte key per operation.
        let mut names = Interner::new();
        let mut ids = Interner::new();
        let mut keyed: Vec<(Phase, u32, u32, u32, u32)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let (a, b) = sort_parts(&op.kind);
                (
                    op.kind.phase(),
                    names.id(a),
                    b.map_or(u32::MAX, |b| names.id(b)),
                    ids.id(source_id(op)),
                    i as u32,
                )
            })
            .collect();
        let (names, ids) = (names.ranks(name_key), ids.ranks(str::to_string));
        for k in &mut keyed {
            k.1 = names[k.1 as usize];
            k.2 = if k.2 == u32::MAX {
                0
            } else {
                names[k.2 as usize] + 1
            };
            k.3 = ids[k.3 as usize];
        }
        drop((names, ids));
        keyed.sort_unstable();
        keyed.into_iter().map(|k| k.4).collect()
    };
    permute(ops, order);
}

/// Reorders `items` in place so that position `i` holds what was at `order[i]`: follows each
/// cycle of the permutation with swaps, so no second copy of the operations is made.
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    const DONE: u32 = u32::MAX;
    for start in 0..items.len() {
        if order[start] == DONE {
            continue;
        }
        let mut j = start;
        loop {
            let k = order[j] as usize;
            order[j] = DONE;
            if k == start {
                break;
            }
            items.swap(j, k);
            j = k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::AccountSpec;
    use proptest::prelude::*;

    /// The order the planner used to build: one `(phase, sort_name, source_id)` string key per
    /// operation, stable sort.
    fn by_string_keys(ops: &[Operation]) -> Vec<Operation> {
        let mut v = ops.to_vec();
        v.sort_by_cached_key(|o| {
            (
                o.kind.phase(),
                o.kind.sort_name(),
                o.kind.source_id().unwrap_or_default().to_string(),
            )
        });
        v
    }

    fn op(kind: OpKind) -> Operation {
        Operation {
            seq: 0,
            kind,
            reason: String::new(),
        }
    }

    /// Names that probe the rank shortcut: case, prefixes, separators below and above NUL.
    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "A", "b", " ", "\u{0}", "é", "É"]),
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    fn kind() -> impl Strategy<Value = OpKind> {
        (0u8..6, name(), name(), name()).prop_map(|(k, a, b, sid)| match k {
            0 => OpKind::AddMembers {
                group: a,
                usernames: if b.is_empty() { vec![] } else { vec![b] },
            },
            1 => OpKind::RemoveMember {
                group: a,
                username: b,
            },
            2 => OpKind::CreateUser {
                source_id: sid,
                account: AccountSpec {
                    username: a,
                    display_name: b,
                    email: String::new(),
                },
            },
            3 => OpKind::AdoptUser {
                source_id: sid,
                username: a,
                target_key: None,
            },
            4 => OpKind::AdoptGroup {
                source_id: sid,
                name: a,
            },
            _ => OpKind::DeleteGroup {
                source_id: sid,
                name: a,
            },
        })
    }

    proptest! {
        /// The rank sort gives exactly the order of the per-operation key strings, ties
        /// included, with and without NULs in the names.
        #[test]
        fn rank_sort_matches_string_keys(kinds in prop::collection::vec(kind(), 0..40)) {
            let ops: Vec<Operation> = kinds.into_iter().map(op).collect();
            let mut sorted = ops.clone();
            sort_ops(&mut sorted);
            prop_assert_eq!(sorted, by_string_keys(&ops));
        }
    }

    #[test]
    fn permute_follows_cycles() {
        let mut v = vec!['a', 'b', 'c', 'd', 'e'];
        permute(&mut v, vec![3, 0, 4, 1, 2]);
        assert_eq!(v, vec!['d', 'a', 'e', 'b', 'c']);
    }
}
