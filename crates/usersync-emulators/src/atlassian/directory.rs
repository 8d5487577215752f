//! The in-memory user directory shared by every product surface, and the [`DirectoryHandle`]
//! tests use to read and change it.
//!
//! Names are compared case-insensitively everywhere (all four products do, e.g. Crowd's
//! `equalsIgnoreCase` in UsersResource) while the original spelling is kept for display.
//! Users carry a numeric id that never changes, so a rename keeps memberships, like the products'
//! immutable user keys do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::faults::{FailRule, FaultConfig, RateLimit};
use super::{Product, Shared};

/// A user account as the emulated product stores it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Immutable numeric id (Bitbucket `id`; also the base of the other products' keys).
    pub id: u64,
    /// Immutable product key: Jira `JIRAUSER<id>`, Confluence 32-hex `userKey`, Crowd `<dir>:<uuid>`,
    /// Bitbucket the id as a string.
    pub key: String,
    /// Login name in its original case.
    pub name: String,
    /// Display name (Confluence `fullName`).
    pub display_name: String,
    /// Crowd `first-name`.
    pub first_name: String,
    /// Crowd `last-name`.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Whether the account is active (Jira `active`, Confluence enable/disable, Crowd `active`).
    pub active: bool,
    /// Password as last set (never returned on the wire).
    #[serde(skip)]
    pub password: Option<String>,
    /// Crowd-style multi-valued attributes.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The uploaded avatar, if any.
    pub avatar: Option<Avatar>,
    /// `false` for accounts seeded as pre-existing ("unmanaged") accounts, `true` for accounts
    /// created through the REST API.
    pub created_via_api: bool,
}

/// An uploaded avatar image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Avatar {
    /// MIME type as uploaded.
    pub content_type: String,
    /// Raw image bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Length of `bytes`, for `/_emulator/state`.
    pub size: usize,
}

/// A group.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Group {
    /// Group name in its original case.
    pub name: String,
    /// Crowd description.
    pub description: String,
    /// Crowd `active` flag.
    pub active: bool,
    /// Crowd-style attributes.
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// A Jira application role (`GET /rest/api/2/applicationrole`, ApplicationRoleBean in the Jira
/// 10.3 OpenAPI): membership of any of `groups` grants the application (and uses a seat);
/// `default_groups` are what `applicationKeys` on user creation adds the user to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppRole {
    /// Role key, e.g. `jira-software`.
    pub key: String,
    /// Display name, e.g. `Jira Software`.
    pub name: String,
    /// Groups granting the role.
    pub groups: Vec<String>,
    /// Groups a new user with this application is put into.
    pub default_groups: Vec<String>,
    /// Given to new users that do not name `applicationKeys`.
    pub selected_by_default: bool,
    /// Licence seats, `None` for unlimited.
    pub seats: Option<usize>,
}

/// A user to seed into a fresh emulator (an account that exists before usersync runs).
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// Password (Basic auth works with it).
    pub password: String,
    /// Active flag.
    pub active: bool,
    /// Groups (created if missing).
    pub groups: Vec<String>,
}

impl SeedUser {
    /// A seed user `name` with `name@example.com`, password `name`, active, no groups.
    pub fn new(name: &str) -> Self {
        SeedUser {
            name: name.to_string(),
            display_name: name.to_string(),
            email: format!("{name}@example.com"),
            password: name.to_string(),
            active: true,
            groups: Vec::new(),
        }
    }

    /// Adds group memberships.
    pub fn in_groups(mut self, groups: &[&str]) -> Self {
        self.groups.extend(groups.iter().map(|g| g.to_string()));
        self
    }
}

/// Fields of a new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// First name (Crowd).
    pub first_name: String,
    /// Last name (Crowd).
    pub last_name: String,
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: Option<String>,
    /// Active flag.
    pub active: bool,
}

/// The directory contents.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// By lower-cased name.
    pub users: BTreeMap<String, User>,
    /// User id -> lower-cased name (index kept in step with `users`, so id lookups stay O(log n)
    /// for large seeded directories).
    pub by_id: BTreeMap<u64, String>,
    /// By lower-cased name.
    pub groups: BTreeMap<String, Group>,
    /// (lower-cased group name, user id).
    pub members: BTreeSet<(String, u64)>,
    /// (user id, lower-cased group name): the same edges indexed by user, so listing a user's
    /// groups (done for every user on every Jira/Bitbucket page) is a range scan, not a scan
    /// of every membership. Kept in step with `members` by the methods below.
    pub by_user: BTreeSet<(u64, String)>,
    /// Jira users deleted through REST, by key: Jira keeps a deleted user's key and name, and
    /// `GET /user?includeDeleted=true` still returns them (`"deleted": true`).
    pub deleted_users: BTreeMap<String, User>,
    /// Nested groups (Crowd): (lower-cased parent, lower-cased child), a direct edge each.
    pub children: BTreeSet<(String, String)>,
    pub next_id: u64,
    pub roles: Vec<AppRole>,
    /// Groups that make a member count as licensed (Confluence "can use", Bitbucket
    /// `LICENSED_USER` group permission, Jira: the roles' groups).
    pub licensed_groups: BTreeSet<String>,
    /// Bitbucket global permissions granted to groups (lower-cased group -> permission).
    pub group_permissions: BTreeMap<String, String>,
    /// Bitbucket global permissions granted to users directly (user id -> permission).
    pub user_permissions: BTreeMap<u64, String>,
    /// Licence seats for Confluence/Bitbucket; `None` for unlimited.
    pub seats: Option<usize>,
    /// Groups whose members are product administrators.
    pub admin_groups: BTreeSet<String>,
    /// Jira avatars: id -> (owner id, avatar).
    pub avatars: BTreeMap<u64, (u64, Avatar)>,
    /// Jira temporary avatar per user id (step 1 of the three-step upload).
    pub temp_avatars: BTreeMap<u64, Avatar>,
    pub next_avatar_id: u64,
}

/// Lower-cases a name for comparisons.
pub(crate) fn lc(s: &str) -> String {
    s.to_lowercase()
}

impl State {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(&lc(name))
    }

    pub fn user_by_key(&self, key: &str) -> Option<&User> {
        self.users.values().find(|u| u.key == key)
    }

    pub fn user_by_id(&self, id: u64) -> Option<&User> {
        self.by_id.get(&id).and_then(|n| self.users.get(n))
    }

    pub fn user_mut(&mut self, name: &str) -> Option<&mut User> {
        self.users.get_mut(&lc(name))
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(&lc(name))
    }

    /// Creates a user; the caller has validated the name is free.
    pub fn add_user(&mut self, product: Product, n: NewUser, via_api: bool) -> User {
        self.next_id += 1;
        let id = self.next_id;
        let key = match product {
            // Jira 8.x+ keys new users `JIRAUSER<n>` (UserBean example in the Jira 10.3 OpenAPI).
            Product::Jira => format!("JIRAUSER{}", 10000 + id),
            // Confluence userKey is 32 hex chars (example in the Confluence 10.0.3 OpenAPI).
            Product::Confluence => uuid::Uuid::new_v4().simple().to_string(),
            Product::Bitbucket => id.to_string(),
            // Crowd keys are `<directoryId>:<uuid>`.
            Product::Crowd => format!("32769:{}", uuid::Uuid::new_v4()),
        };
        let u = User {
            id,
            key,
            name: n.name.clone(),
            display_name: n.display_name,
            first_name: n.first_name,
            last_name: n.last_name,
            email: n.email,
            active: n.active,
            password: n.password,
            attributes: BTreeMap::new(),
            avatar: None,
            created_via_api: via_api,
        };
        self.users.insert(lc(&n.name), u.clone());
        self.by_id.insert(id, lc(&n.name));
        u
    }

    pub fn ensure_group(&mut self, name: &str) -> &Group {
        self.groups.entry(lc(name)).or_insert_with(|| Group {
            name: name.to_string(),
            description: String::new(),
            active: true,
            attributes: BTreeMap::new(),
        })
    }

    pub fn remove_user(&mut self, name: &str) -> Option<User> {
        let u = self.users.remove(&lc(name))?;
        self.by_id.remove(&u.id);
        self.members.retain(|(_, id)| *id != u.id);
        self.by_user.retain(|(id, _)| *id != u.id);
        self.user_permissions.remove(&u.id);
        Some(u)
    }

    pub fn remove_group(&mut self, name: &str) -> Option<Group> {
        let g = self.groups.remove(&lc(name))?;
        let l = lc(name);
        self.members.retain(|(gn, _)| *gn != l);
        self.by_user.retain(|(_, gn)| *gn != l);
        self.group_permissions.remove(&l);
        self.children.retain(|(p, c)| *p != l && *c != l);
        Some(g)
    }

    /// Adds `child` as a direct member of `parent`; false when the edge already existed.
    pub fn add_child(&mut self, parent: &str, child: &str) -> bool {
        self.children.insert((lc(parent), lc(child)))
    }

    /// Removes a direct parent-child edge; false when there was none.
    pub fn remove_child(&mut self, parent: &str, child: &str) -> bool {
        self.children.remove(&(lc(parent), lc(child)))
    }

    /// Direct child groups of `parent`, sorted by lower-cased name.
    pub fn children_of(&self, parent: &str) -> Vec<Group> {
        let l = lc(parent);
        self.children
            .range((l.clone(), String::new())..)
            .take_while(|(p, _)| *p == l)
            .filter_map(|(_, c)| self.groups.get(c).cloned())
            .collect()
    }

    /// Direct parent groups of `child`, sorted by lower-cased name.
    pub fn parents_of(&self, child: &str) -> Vec<Group> {
        let l = lc(child);
        let names: BTreeSet<&String> = self
            .children
            .iter()
            .filter(|(_, c)| *c == l)
            .map(|(p, _)| p)
            .collect();
        names
            .into_iter()
            .filter_map(|p| self.groups.get(p).cloned())
            .collect()
    }

    /// Every group reachable from `start` through `next` (children or parents), `start`
    /// excluded unless a cycle leads back to it; cycle-safe (Crowd allows cycles and its
    /// nested queries stop at groups already seen). Sorted by lower-cased name.
    fn reachable(&self, start: &str, down: bool) -> Vec<Group> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo = vec![lc(start)];
        while let Some(g) = todo.pop() {
            let next = if down {
                self.children_of(&g)
            } else {
                self.parents_of(&g)
            };
            for n in next {
                if seen.insert(lc(&n.name)) {
                    todo.push(lc(&n.name));
                }
            }
        }
        seen.into_iter()
            .filter_map(|g| self.groups.get(&g).cloned())
            .collect()
    }

    /// Direct and indirect child groups of `parent`.
    pub fn descendants_of(&self, parent: &str) -> Vec<Group> {
        self.reachable(parent, true)
    }

    /// Direct and indirect parent groups of `child`.
    pub fn ancestors_of(&self, child: &str) -> Vec<Group> {
        self.reachable(child, false)
    }

    /// Users who are members of `group` directly or through a child group, sorted by
    /// lower-cased name.
    pub fn nested_members_of(&self, group: &str) -> Vec<User> {
        let mut ids: BTreeSet<u64> = BTreeSet::new();
        let mut groups = vec![lc(group)];
        groups.extend(self.descendants_of(group).iter().map(|g| lc(&g.name)));
        for g in groups {
            ids.extend(
                self.members
                    .range((g.clone(), 0)..=(g, u64::MAX))
                    .map(|(_, id)| *id),
            );
        }
        let mut names: Vec<&String> = ids.iter().filter_map(|id| self.by_id.get(id)).collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter_map(|n| self.users.get(n).cloned())
            .collect()
    }

    /// Groups a user belongs to directly or through a parent of one of them, sorted by
    /// lower-cased name.
    pub fn nested_groups_of(&self, uid: u64) -> Vec<Group> {
        let mut all: BTreeMap<String, Group> = BTreeMap::new();
        for g in self.groups_of(uid) {
            for a in self.ancestors_of(&g.name) {
                all.insert(lc(&a.name), a);
            }
            all.insert(lc(&g.name), g);
        }
        all.into_values().collect()
    }

    /// Renames a user; the caller has checked the target is free.
    pub fn rename_user(&mut self, old: &str, new: &str) -> Option<User> {
        let mut u = self.users.remove(&lc(old))?;
        u.name = new.to_string();
        self.by_id.insert(u.id, lc(new));
        self.users.insert(lc(new), u.clone());
        Some(u)
    }

    pub fn is_member(&self, group: &str, uid: u64) -> bool {
        self.members.contains(&(lc(group), uid))
    }

    /// Adds a membership; returns false when it already existed.
    pub fn add_member(&mut self, group: &str, uid: u64) -> bool {
        self.by_user.insert((uid, lc(group)));
        self.members.insert((lc(group), uid))
    }

    pub fn remove_member(&mut self, group: &str, uid: u64) -> bool {
        self.by_user.remove(&(uid, lc(group)));
        self.members.remove(&(lc(group), uid))
    }

    /// Members of a group sorted by lower-cased name.
    pub fn members_of(&self, group: &str) -> Vec<User> {
        self.member_refs(group).into_iter().cloned().collect()
    }

    /// Members of a group sorted by lower-cased name, borrowed: listing a large group page by
    /// page must not copy every member for every page.
    pub fn member_refs(&self, group: &str) -> Vec<&User> {
        let l = lc(group);
        // Memberships are ordered by (group, user id): take the group's range only. `by_id`
        // holds the lower-cased names, so sorting needs no allocation.
        let mut names: Vec<&String> = self
            .members
            .range((l.clone(), 0)..=(l, u64::MAX))
            .filter_map(|(_, id)| self.by_id.get(id))
            .collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter_map(|n| self.users.get(n))
            .collect()
    }

    /// Groups of a user sorted by lower-cased name.
    pub fn groups_of(&self, uid: u64) -> Vec<Group> {
        self.by_user
            .range((uid, String::new())..(uid.saturating_add(1), String::new()))
            .filter_map(|(_, g)| self.groups.get(g).cloned())
            .collect()
    }

    /// Whether an active user counts against the licence.
    pub fn is_licensed(&self, u: &User) -> bool {
        u.active
            && (self.user_permissions.contains_key(&u.id)
                || self.groups_of(u.id).iter().any(|g| {
                    let l = lc(&g.name);
                    self.licensed_groups.contains(&l) || self.group_permissions.contains_key(&l)
                }))
    }

    pub fn licensed_count(&self) -> usize {
        // One pass over the memberships instead of `is_licensed` per user.
        let mut ids: BTreeSet<u64> = self.user_permissions.keys().copied().collect();
        for (g, id) in &self.members {
            if self.licensed_groups.contains(g) || self.group_permissions.contains_key(g) {
                ids.insert(*id);
            }
        }
        ids.into_iter()
            .filter(|id| self.user_by_id(*id).is_some_and(|u| u.active))
            .count()
    }

    /// Whether licensing one more user would exceed the seats.
    pub fn licence_full(&self) -> bool {
        self.seats.is_some_and(|s| self.licensed_count() >= s)
    }

    pub fn is_admin(&self, u: &User) -> bool {
        self.groups_of(u.id)
            .iter()
            .any(|g| self.admin_groups.contains(&lc(&g.name)))
    }
}

/// A point-in-time copy of the directory, as served by `GET /_emulator/state`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// All users sorted by lower-cased name.
    pub users: Vec<User>,
    /// All groups sorted by lower-cased name.
    pub groups: Vec<Group>,
    /// Group name -> member user names.
    pub memberships: BTreeMap<String, Vec<String>>,
    /// Jira application roles (empty for the other products).
    pub application_roles: Vec<AppRole>,
    /// Number of users consuming a licence seat.
    pub licensed_users: usize,
}

/// Cloneable handle on an emulator's directory, faults and statistics.
#[derive(Clone)]
pub struct DirectoryHandle {
    pub(crate) shared: Arc<Shared>,
}

impl DirectoryHandle {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock_state()
    }

    /// All users, sorted by lower-cased name.
    pub fn users(&self) -> Vec<User> {
        self.lock().users.values().cloned().collect()
    }

    /// All groups, sorted by lower-cased name.
    pub fn groups(&self) -> Vec<Group> {
        self.lock().groups.values().cloned().collect()
    }

    /// One user by name (case-insensitive).
    pub fn user(&self, name: &str) -> Option<User> {
        self.lock().user(name).cloned()
    }

    /// One group by name (case-insensitive).
    pub fn group(&self, name: &str) -> Option<Group> {
        self.lock().group(name).cloned()
    }

    /// Member names of a group (original case, sorted case-insensitively); empty if the group is
    /// missing.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.lock()
            .members_of(group)
            .into_iter()
            .map(|u| u.name)
            .collect()
    }

    /// Group names a user belongs to directly.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        let st = self.lock();
        match st.user(user) {
            Some(u) => st.groups_of(u.id).into_iter().map(|g| g.name).collect(),
            None => Vec::new(),
        }
    }

    /// Number of users that consume a licence seat.
    pub fn licensed_users(&self) -> usize {
        self.lock().licensed_count()
    }

    /// A full copy of the directory.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let mut memberships = BTreeMap::new();
        for g in st.groups.values() {
            memberships.insert(
                g.name.clone(),
                st.members_of(&g.name).into_iter().map(|u| u.name).collect(),
            );
        }
        Snapshot {
            users: st.users.values().cloned().collect(),
            groups: st.groups.values().cloned().collect(),
            memberships,
            application_roles: st.roles.clone(),
            licensed_users: st.licensed_count(),
        }
    }

    /// Seeds an account as if it existed before (not created through the API). Replaces an
    /// existing user of the same name. Missing groups are created.
    pub fn seed_user(&self, seed: SeedUser) -> User {
        let product = self.shared.product;
        let mut st = self.lock();
        st.remove_user(&seed.name);
        let u = st.add_user(
            product,
            NewUser {
                name: seed.name.clone(),
                display_name: seed.display_name.clone(),
                first_name: seed.display_name.clone(),
                last_name: String::new(),
                email: seed.email.clone(),
                password: Some(seed.password.clone()),
                active: seed.active,
            },
            false,
        );
        for g in &seed.groups {
            let gname = st.ensure_group(g).name.clone();
            st.add_member(&gname, u.id);
        }
        u
    }

    /// Creates a group if it does not exist.
    pub fn seed_group(&self, name: &str) {
        self.lock().ensure_group(name);
    }

    /// Adds a membership (creating the group if needed); false if the user is missing.
    pub fn add_member(&self, group: &str, user: &str) -> bool {
        let mut st = self.lock();
        let Some(id) = st.user(user).map(|u| u.id) else {
            return false;
        };
        let gname = st.ensure_group(group).name.clone();
        st.add_member(&gname, id);
        true
    }

    /// Removes a user; returns whether it existed.
    pub fn delete_user(&self, name: &str) -> bool {
        self.lock().remove_user(name).is_some()
    }

    /// Sets a user's active flag; returns whether the user exists.
    pub fn set_active(&self, name: &str, active: bool) -> bool {
        match self.lock().user_mut(name) {
            Some(u) => {
                u.active = active;
                true
            }
            None => false,
        }
    }

    /// Sets (or removes) the licence seat limit used for Confluence 402 / Bitbucket 403 / Jira
    /// role seats.
    pub fn set_licence_seats(&self, seats: Option<usize>) {
        let mut st = self.lock();
        st.seats = seats;
        for r in &mut st.roles {
            r.seats = seats;
        }
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config = faults;
    }

    /// The current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    /// Changes the fault configuration in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut FaultConfig)) {
        f(&mut self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config);
    }

    /// Sets the added latency of every request.
    pub fn set_latency(&self, latency: Duration) {
        self.update_faults(|f| f.latency = latency);
    }

    /// Answers the next `n` requests with 429 and `Retry-After: retry_after_secs`.
    pub fn inject_429(&self, n: u32, retry_after_secs: u64) {
        self.update_faults(|f| {
            f.throttle_next = n;
            f.retry_after_secs = retry_after_secs;
        });
    }

    /// Puts the instance into (or out of) maintenance: every request gets 503.
    pub fn set_maintenance(&self, on: bool) {
        self.update_faults(|f| f.maintenance = on);
    }

    /// Adds a request failure rule.
    pub fn add_fail_rule(&self, rule: FailRule) {
        self.update_faults(|f| f.fail_rules.push(rule));
    }

    /// Makes every write that creates, renames to or changes the user `name` fail with `status`
    /// and the product's error body carrying `message`.
    pub fn fail_writes_for_user(&self, name: &str, status: u16, message: &str) {
        self.update_faults(|f| {
            f.fail_users.insert(lc(name), (status, message.to_string()));
        });
    }

    /// Enables (or disables) the token-bucket rate limiter.
    pub fn set_rate_limit(&self, rl: Option<RateLimit>) {
        let mut f = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.config.rate_limit = rl;
        f.buckets.clear();
    }
}
