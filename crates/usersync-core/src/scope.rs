//! Scope: which source users and groups are synced. Include / exclude group selectors (exact
//! name, regex, object ID), transitive cycle-safe flattening of nested groups, and detection of
//! group names that collide case-insensitively (neither group is synced).

use crate::config::{GroupSelector, ScopeSettings};
use crate::model::{SourceGroup, SourceSnapshot, name_key};
use crate::plan::{Conflict, ConflictKind};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A scope setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A `regex` selector does not compile.
    #[error(
        "scope.{list}: invalid regular expression {pattern:?}: {message}; fix the pattern \
         (Rust regex syntax) or use a `name` selector for an exact group name"
    )]
    BadRegex {
        /// `include_groups` or `exclude_groups`.
        list: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
}

/// A compiled list of group selectors.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    names: HashSet<String>,
    ids: HashSet<String>,
    regexes: Vec<Regex>,
}

impl Selectors {
    /// Compiles selectors; `list` names the setting for error messages.
    pub fn compile(list: &'static str, selectors: &[GroupSelector]) -> Result<Self, ScopeError> {
        let mut out = Selectors::default();
        for s in selectors {
            match s {
                GroupSelector::Name(n) => {
                    out.names.insert(name_key(n.trim()));
                }
                GroupSelector::Id(id) => {
                    out.ids.insert(id.trim().to_string());
                }
                GroupSelector::Regex(p) => {
                    out.regexes
                        .push(Regex::new(p).map_err(|e| ScopeError::BadRegex {
                            list,
                            pattern: p.clone(),
                            message: e.to_string(),
                        })?)
                }
            }
        }
        Ok(out)
    }

    /// True when no selector is configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.ids.is_empty() && self.regexes.is_empty()
    }

    /// True when `group` matches any selector.
    pub fn matches(&self, group: &SourceGroup) -> bool {
        self.ids.contains(&group.id)
            || self.names.contains(&name_key(group.display_name.trim()))
            || self.regexes.iter().any(|r| r.is_match(&group.display_name))
    }
}

/// A group that will be synced, with its (possibly flattened) in-scope member users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedGroup {
    /// Source object ID.
    pub source_id: String,
    /// Target group name (the source display name, trimmed).
    pub name: String,
    /// In-scope member users, as indexes into the snapshot's `users` (sorted, unique): four
    /// bytes a membership instead of a copied object ID (millions at scale).
    pub members: Vec<u32>,
}

/// The result of scoping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// In scope, by index into the snapshot's `users`.
    pub users: Vec<bool>,
    /// Synced groups by source ID.
    pub groups: BTreeMap<String, ScopedGroup>,
    /// Source IDs of in-scope groups left out because of a conflict (name collision, empty
    /// name); their existing target groups are left untouched.
    pub blocked_groups: BTreeSet<String>,
    /// Group conflicts.
    pub conflicts: Vec<Conflict>,
}

/// A hash map with foldhash (several times faster than SipHash on short keys), seeded per
/// process from the standard library's random state, for maps the planner probes millions of
/// times.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// An empty [`FastMap`] with room for `n` entries.
pub fn fast_map<K, V>(n: usize) -> FastMap<K, V> {
    use std::hash::BuildHasher as _;
    let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
    HashMap::with_capacity_and_hasher(n, foldhash::fast::FixedState::with_seed(seed))
}

/// Source user IDs → index into the snapshot's `users` (the first one, should an ID repeat).
pub fn user_indexes(source: &SourceSnapshot) -> FastMap<&str, u32> {
    let mut out = fast_map(source.users.len());
    for (i, u) in source.users.iter().enumerate() {
        out.entry(u.id.as_str()).or_insert(i as u32);
    }
    out
}

/// Member users of `root` (indexes into the snapshot's users, sorted and unique; IDs that are
/// not users of the read are left out), following nested groups transitively when `flatten`.
/// Cycle-safe: each group is visited once.
pub fn effective_members(
    root: &SourceGroup,
    by_id: &HashMap<&str, &SourceGroup>,
    users: &FastMap<&str, u32>,
    flatten: bool,
) -> Vec<u32> {
    let index = |ids: &BTreeSet<String>| {
        ids.iter()
            .filter_map(|id| users.get(id.as_str()).copied())
            .collect::<Vec<u32>>()
    };
    let mut out = index(&root.member_users);
    if flatten && !root.member_groups.is_empty() {
        let mut seen: HashSet<&str> = HashSet::from([root.id.as_str()]);
        let mut stack: Vec<&str> = root.member_groups.iter().map(String::as_str).collect();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(g) = by_id.get(id) {
                out.extend(index(&g.member_users));
                stack.extend(g.member_groups.iter().map(String::as_str));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Resolves the scope. With an include list, users are the members of the included,
/// non-excluded groups; without one, every user except members of excluded groups. Synced
/// groups are the included (or all) groups minus the excluded ones and minus name collisions.
pub fn resolve_scope(
    source: &SourceSnapshot,
    settings: &ScopeSettings,
) -> Result<Scope, ScopeError> {
    let include = Selectors::compile("include_groups", &settings.include_groups)?;
    let exclude = Selectors::compile("exclude_groups", &settings.exclude_groups)?;
    let by_id: HashMap<&str, &SourceGroup> =
        source.groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let uidx = user_indexes(source);
    let flatten = settings.flatten_nested;

    let excluded: Vec<&SourceGroup> = source
        .groups
        .iter()
        .filter(|g| exclude.matches(g))
        .collect();
    let synced: Vec<&SourceGroup> = source
        .groups
        .iter()
        .filter(|g| (include.is_empty() || include.matches(g)) && !exclude.matches(g))
        .collect();

    // In scope, by user index. Decided on each ID's first index (the one members refer to),
    // then copied to repeats of the ID, as a set of IDs would.
    let canon: Vec<u32> = source
        .users
        .iter()
        .map(|u| uidx.get(u.id.as_str()).copied().unwrap_or_default())
        .collect();
    let mut users = vec![include.is_empty(); source.users.len()];
    if include.is_empty() {
        for g in &excluded {
            for m in effective_members(g, &by_id, &uidx, flatten) {
                users[m as usize] = false;
            }
        }
    }

    // Group names colliding case-insensitively: neither is synced.
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, g) in synced.iter().enumerate() {
        by_name
            .entry(name_key(g.display_name.trim()))
            .or_default()
            .push(i);
    }
    // Effective members of each synced group, computed once (indexes: four bytes each).
    let mut members: Vec<Vec<u32>> = synced
        .iter()
        .map(|g| effective_members(g, &by_id, &uidx, flatten))
        .collect();
    drop(uidx);
    if !include.is_empty() {
        for m in &members {
            for &i in m {
                users[i as usize] = true;
            }
        }
    }
    for (i, &c) in canon.iter().enumerate() {
        users[i] = users[c as usize];
    }
    drop(canon);
    let mut scope = Scope::default();
    for (key, idxs) in by_name {
        if key.is_empty() {
            for &i in &idxs {
                scope.blocked_groups.insert(synced[i].id.clone());
                scope.conflicts.push(Conflict {
                    kind: ConflictKind::InvalidGroupName,
                    name: String::new(),
                    source_ids: vec![synced[i].id.clone()],
                    detail: "the source group has an empty display name; it is not synced".into(),
                });
            }
            continue;
        }
        if idxs.len() > 1 {
            // Sorted by ID so the report does not depend on the source's listing order.
            let mut idxs = idxs;
            idxs.sort_by(|a, b| synced[*a].id.cmp(&synced[*b].id));
            let ids: Vec<String> = idxs.iter().map(|&i| synced[i].id.clone()).collect();
            let names: Vec<&str> = idxs
                .iter()
                .map(|&i| synced[i].display_name.trim())
                .collect();
            scope.blocked_groups.extend(ids.iter().cloned());
            scope.conflicts.push(Conflict {
                kind: ConflictKind::DuplicateGroupName,
                name: synced[idxs[0]].display_name.trim().to_string(),
                source_ids: ids,
                detail: format!(
                    "{} source groups have names that are equal ignoring case ({}); Atlassian \
                     group names are case-insensitive, so neither is synced until one is renamed",
                    idxs.len(),
                    names.join(", ")
                ),
            });
            continue;
        }
        let i = idxs[0];
        let g = synced[i];
        let mut in_scope = std::mem::take(&mut members[i]);
        in_scope.retain(|&m| users[m as usize]);
        in_scope.shrink_to_fit();
        scope.groups.insert(
            g.id.clone(),
            ScopedGroup {
                source_id: g.id.clone(),
                name: g.display_name.trim().to_string(),
                members: in_scope,
            },
        );
    }
    scope.users = users;
    Ok(scope)
}
