//! In-memory Entra ID directory: users, groups, membership edges, a change sequence for
//! delta queries, and tombstones for deletions.
//!
//! Compact on purpose (an L tenant has 300k users and 3M membership edges): strings are
//! `Box<str>`, memberships are `Vec<u32>` of [`MemberRef`]-encoded indices.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Monotonic change sequence number (0 = never).
pub type Seq = u64;

/// Membership reference: a user index, or a group index with the high bit set.
pub type MemberRef = u32;
const GROUP_BIT: u32 = 0x8000_0000;

pub fn user_ref(i: u32) -> MemberRef {
    i
}
pub fn group_ref(i: u32) -> MemberRef {
    i | GROUP_BIT
}
/// Decodes a [`MemberRef`] into (is_group, index).
pub fn decode_ref(r: MemberRef) -> (bool, u32) {
    (r & GROUP_BIT != 0, r & !GROUP_BIT)
}

/// User properties whose changes are tracked per change, for delta with
/// `Prefer: return=minimal` (only changed properties are returned).
/// <https://learn.microsoft.com/graph/api/user-delta> (Request headers).
pub const TRACKED_USER_PROPS: &[&str] = &[
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "accountEnabled",
    "onPremisesSamAccountName",
    "employeeId",
    "userType",
    "jobTitle",
    "department",
    "mailNickname",
    "proxyAddresses",
    "identities",
    "externalUserState",
];
/// "Everything changed" (creation, restore).
pub const ALL_CHANGED: u64 = u64::MAX;

/// Bit mask of tracked property names.
pub fn prop_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .filter_map(|n| TRACKED_USER_PROPS.iter().position(|t| t == n))
        .fold(0, |m, i| m | (1 << i))
}

/// Lifecycle state of a directory object.
///
/// Soft-deleted objects sit in "deleted items" and can be restored; delta reports them as
/// `@removed: {"reason":"changed"}`, hard-deleted ones as `{"reason":"deleted"}`.
/// <https://learn.microsoft.com/graph/delta-query-users> ("Removed instances").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    Active,
    SoftDeleted,
    HardDeleted,
}

/// One user object.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub upn: Box<str>,
    pub mail: Option<Box<str>>,
    pub given_name: Option<Box<str>>,
    pub surname: Option<Box<str>>,
    pub display_name: Box<str>,
    pub account_enabled: bool,
    pub sam: Option<Box<str>>,
    pub employee_id: Option<Box<str>>,
    pub guest: bool,
    pub job_title: Option<Box<str>>,
    pub department: Option<Box<str>>,
    /// Index into the cached photo set; `None` = no photo (404 `ImageNotFound`).
    pub photo: Option<u16>,
    /// Bumped on each photo change so `@odata.mediaEtag` changes.
    pub photo_version: u32,
    pub created: i64,
    pub seq: Seq,
    pub life: Life,
}

/// One group object.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: Uuid,
    pub display_name: Box<str>,
    pub description: Option<Box<str>>,
    pub mail_nickname: Box<str>,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    pub unified: bool,
    pub created: i64,
    /// Current direct members.
    pub members: Vec<MemberRef>,
    /// Last property change.
    pub seq: Seq,
    /// Membership edge changes made after creation: (seq, member, added).
    pub member_log: Vec<(Seq, MemberRef, bool)>,
    pub life: Life,
}

impl Group {
    /// The group's primary SMTP address for mail-enabled groups.
    pub fn mail(&self, domain: &str) -> Option<String> {
        self.mail_enabled
            .then(|| format!("{}@{}", self.mail_nickname, domain))
    }
}

/// Fields of a user, used both to create (missing fields get defaults) and to patch
/// (only present fields change). JSON names follow Graph's camelCase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserFields {
    /// Object id (GUID); generated when absent on create.
    pub id: Option<String>,
    /// `userPrincipalName`: the sign-in name (`user@domain`).
    pub user_principal_name: Option<String>,
    /// `displayName`: the name shown in address lists.
    pub display_name: Option<String>,
    /// `givenName`: first name.
    pub given_name: Option<String>,
    /// `surname`: last name.
    pub surname: Option<String>,
    /// `mail`: primary SMTP address.
    pub mail: Option<String>,
    /// `accountEnabled`: whether the account can sign in.
    pub account_enabled: Option<bool>,
    /// `onPremisesSamAccountName`: the synced on-premises `sAMAccountName`.
    pub on_premises_sam_account_name: Option<String>,
    /// `employeeId`: employee identifier assigned by the organization.
    pub employee_id: Option<String>,
    /// `Member` or `Guest`.
    pub user_type: Option<String>,
    /// `jobTitle`: the user's job title.
    pub job_title: Option<String>,
    /// `department`: the department the user works in.
    pub department: Option<String>,
    /// `true` gives the user a (deterministic) photo, `false` removes it.
    pub has_photo: Option<bool>,
}

/// Fields of a group (create or patch). `members` (ids or UPNs) is honoured on create and in
/// fixtures only.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupFields {
    /// Object id (GUID); generated when absent on create.
    pub id: Option<String>,
    /// `displayName`: the group's display name.
    pub display_name: Option<String>,
    /// `description`: optional free-text description.
    pub description: Option<String>,
    /// `mailNickname`: mail alias of the group.
    pub mail_nickname: Option<String>,
    /// `mailEnabled`: whether the group is mail-enabled.
    pub mail_enabled: Option<bool>,
    /// `securityEnabled`: whether the group is a security group.
    pub security_enabled: Option<bool>,
    /// e.g. `["Unified"]` for a Microsoft 365 group.
    pub group_types: Option<Vec<String>>,
    /// Initial members: user ids or UPNs, group ids or display names.
    pub members: Option<Vec<String>>,
}

/// JSON fixture format for `DirectorySeed::Fixture` / `--fixture`:
///
/// ```json
/// { "users":  [ { "id": "…optional GUID…", "userPrincipalName": "ada@contoso.onmicrosoft.com",
///                 "displayName": "Ada Lovelace", "givenName": "Ada", "surname": "Lovelace",
///                 "mail": "ada@contoso.com", "accountEnabled": true, "userType": "Member",
///                 "onPremisesSamAccountName": "ada", "employeeId": "E1", "hasPhoto": true } ],
///   "groups": [ { "id": "…optional…", "displayName": "Engineers", "securityEnabled": true,
///                 "members": ["ada@contoso.onmicrosoft.com", "<group id or user id>"] } ] }
/// ```
/// Members may name users by id or UPN and groups by id or displayName; they are resolved after
/// all objects exist, so groups can nest in any order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Fixture {
    /// Users to create.
    pub users: Vec<UserFields>,
    /// Groups to create; members are resolved after all objects exist.
    pub groups: Vec<GroupFields>,
}

/// The whole directory of one tenant.
#[derive(Debug, Default)]
pub struct Directory {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub user_by_id: HashMap<Uuid, u32>,
    pub user_by_upn: HashMap<Box<str>, u32>,
    pub group_by_id: HashMap<Uuid, u32>,
    /// Last issued change sequence number.
    pub seq: Seq,
    /// Verified domain used for UPNs and mail (`{tenant}.onmicrosoft.com`).
    pub domain: String,
    /// Counter for ids of objects created at run time (deterministic).
    pub created_counter: u64,
    /// Per-user property change log since start-up: (seq, [`prop_mask`]).
    pub user_changes: HashMap<u32, Vec<(Seq, u64)>>,
    /// Direct group memberships of soft-deleted users, given back on restore.
    pub deleted_memberships: HashMap<u32, Vec<u32>>,
}

impl Directory {
    pub fn new(domain: &str) -> Self {
        Directory {
            domain: domain.to_string(),
            ..Default::default()
        }
    }

    /// Issues the next change sequence number.
    pub fn next_seq(&mut self) -> Seq {
        self.seq += 1;
        self.seq
    }

    /// Finds a (not hard-deleted) user by object id or UPN (case-insensitive).
    pub fn find_user(&self, key: &str) -> Option<u32> {
        let idx = match Uuid::parse_str(key) {
            Ok(id) => self.user_by_id.get(&id).copied(),
            Err(_) => self
                .user_by_upn
                .get(key.to_ascii_lowercase().as_str())
                .copied(),
        }?;
        (self.users[idx as usize].life != Life::HardDeleted).then_some(idx)
    }

    /// Finds a (not hard-deleted) group by object id.
    pub fn find_group(&self, key: &str) -> Option<u32> {
        let id = Uuid::parse_str(key).ok()?;
        let idx = *self.group_by_id.get(&id)?;
        (self.groups[idx as usize].life != Life::HardDeleted).then_some(idx)
    }

    /// Active user lookup (what Graph's `/users/{id}` sees).
    pub fn active_user(&self, key: &str) -> Option<u32> {
        self.find_user(key)
            .filter(|&i| self.users[i as usize].life == Life::Active)
    }

    /// Active group lookup.
    pub fn active_group(&self, key: &str) -> Option<u32> {
        self.find_group(key)
            .filter(|&i| self.groups[i as usize].life == Life::Active)
    }

    /// Whether a member reference points to an active object.
    pub fn ref_active(&self, r: MemberRef) -> bool {
        let (is_group, i) = decode_ref(r);
        if is_group {
            self.groups[i as usize].life == Life::Active
        } else {
            self.users[i as usize].life == Life::Active
        }
    }

    /// Object id of a member reference.
    pub fn ref_id(&self, r: MemberRef) -> Uuid {
        let (is_group, i) = decode_ref(r);
        if is_group {
            self.groups[i as usize].id
        } else {
            self.users[i as usize].id
        }
    }

    /// Inserts a fully built user (generator / fixture / control API).
    pub fn push_user(&mut self, u: User) -> anyhow::Result<u32> {
        let idx = u32::try_from(self.users.len())?;
        let upn_key: Box<str> = u.upn.to_ascii_lowercase().into();
        if self.user_by_id.contains_key(&u.id) {
            anyhow::bail!("a user with id {} already exists", u.id);
        }
        if self.user_by_upn.contains_key(&upn_key) {
            anyhow::bail!("a user with userPrincipalName {} already exists", u.upn);
        }
        self.user_by_id.insert(u.id, idx);
        self.user_by_upn.insert(upn_key, idx);
        self.users.push(u);
        Ok(idx)
    }

    /// Inserts a fully built group.
    pub fn push_group(&mut self, g: Group) -> anyhow::Result<u32> {
        let idx = u32::try_from(self.groups.len())?;
        if self.group_by_id.contains_key(&g.id) {
            anyhow::bail!("a group with id {} already exists", g.id);
        }
        self.group_by_id.insert(g.id, idx);
        self.groups.push(g);
        Ok(idx)
    }

    /// Deterministic id for objects created after start-up.
    pub fn fresh_id(&mut self) -> Uuid {
        self.created_counter += 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&0x5e11_0000_c0ff_ee00u64.to_be_bytes());
        bytes[8..].copy_from_slice(&self.created_counter.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Creates a user from fields, filling defaults.
    pub fn create_user(&mut self, f: &UserFields, now: i64) -> anyhow::Result<u32> {
        let id = match &f.id {
            Some(s) => Uuid::parse_str(s)?,
            None => self.fresh_id(),
        };
        let guest = f
            .user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("guest"));
        let display = f
            .display_name
            .clone()
            .or_else(|| match (&f.given_name, &f.surname) {
                (Some(g), Some(s)) => Some(format!("{g} {s}")),
                _ => None,
            })
            .unwrap_or_else(|| format!("User {}", &id.to_string()[..8]));
        let upn = f
            .user_principal_name
            .clone()
            .unwrap_or_else(|| format!("user{}@{}", &id.simple().to_string()[..12], self.domain));
        let seq = self.next_seq();
        let idx = self.push_user(User {
            id,
            upn: upn.into(),
            mail: f.mail.clone().map(Into::into),
            given_name: f.given_name.clone().map(Into::into),
            surname: f.surname.clone().map(Into::into),
            display_name: display.into(),
            account_enabled: f.account_enabled.unwrap_or(true),
            sam: f.on_premises_sam_account_name.clone().map(Into::into),
            employee_id: f.employee_id.clone().map(Into::into),
            guest,
            job_title: f.job_title.clone().map(Into::into),
            department: f.department.clone().map(Into::into),
            photo: f
                .has_photo
                .unwrap_or(false)
                .then_some((id.as_u128() % 8) as u16),
            photo_version: 1,
            created: now,
            seq,
            life: Life::Active,
        })?;
        self.user_changes
            .entry(idx)
            .or_default()
            .push((seq, ALL_CHANGED));
        Ok(idx)
    }

    /// Applies a patch to a user; bumps its change sequence.
    pub fn patch_user(&mut self, idx: u32, f: &UserFields) -> anyhow::Result<()> {
        if let Some(upn) = &f.user_principal_name {
            let key: Box<str> = upn.to_ascii_lowercase().into();
            if let Some(&other) = self.user_by_upn.get(&key)
                && other != idx
            {
                anyhow::bail!("userPrincipalName {upn} is already in use");
            }
            let old: Box<str> = self.users[idx as usize].upn.to_ascii_lowercase().into();
            self.user_by_upn.remove(&old);
            self.user_by_upn.insert(key, idx);
        }
        let seq = self.next_seq();
        let mut names: Vec<&str> = Vec::new();
        let mut mark = |present: bool, props: &[&'static str]| {
            if present {
                names.extend_from_slice(props);
            }
        };
        mark(
            f.user_principal_name.is_some(),
            &["userPrincipalName", "mailNickname", "identities"],
        );
        mark(f.display_name.is_some(), &["displayName"]);
        mark(f.given_name.is_some(), &["givenName"]);
        mark(f.surname.is_some(), &["surname"]);
        mark(f.mail.is_some(), &["mail", "proxyAddresses"]);
        mark(f.account_enabled.is_some(), &["accountEnabled"]);
        mark(
            f.on_premises_sam_account_name.is_some(),
            &["onPremisesSamAccountName"],
        );
        mark(f.employee_id.is_some(), &["employeeId"]);
        mark(f.user_type.is_some(), &["userType", "externalUserState"]);
        mark(f.job_title.is_some(), &["jobTitle"]);
        mark(f.department.is_some(), &["department"]);
        let mask = prop_mask(&names);
        if mask != 0 {
            self.user_changes.entry(idx).or_default().push((seq, mask));
        }
        let u = &mut self.users[idx as usize];
        let set = |dst: &mut Option<Box<str>>, src: &Option<String>| {
            if let Some(v) = src {
                *dst = (!v.is_empty()).then(|| v.clone().into());
            }
        };
        if let Some(v) = &f.user_principal_name {
            u.upn = v.clone().into();
        }
        if let Some(v) = &f.display_name {
            u.display_name = v.clone().into();
        }
        set(&mut u.given_name, &f.given_name);
        set(&mut u.surname, &f.surname);
        set(&mut u.mail, &f.mail);
        set(&mut u.sam, &f.on_premises_sam_account_name);
        set(&mut u.employee_id, &f.employee_id);
        set(&mut u.job_title, &f.job_title);
        set(&mut u.department, &f.department);
        if let Some(v) = f.account_enabled {
            u.account_enabled = v;
        }
        if let Some(t) = &f.user_type {
            u.guest = t.eq_ignore_ascii_case("guest");
        }
        if let Some(p) = f.has_photo {
            u.photo = p.then_some((u.id.as_u128() % 8) as u16);
            u.photo_version += 1;
        }
        // Photos are not tracked by delta, so a photo-only change does not bump `seq`.
        let tracked = UserFields {
            has_photo: None,
            ..f.clone()
        };
        if serde_json::to_value(&tracked).is_ok_and(|v| {
            v.as_object()
                .is_some_and(|o| o.values().any(|x| !x.is_null()))
        }) {
            u.seq = seq;
        }
        Ok(())
    }

    /// Creates a group from fields (members resolved by id/UPN/displayName).
    pub fn create_group(&mut self, f: &GroupFields, now: i64) -> anyhow::Result<u32> {
        let id = match &f.id {
            Some(s) => Uuid::parse_str(s)?,
            None => self.fresh_id(),
        };
        let display = f
            .display_name
            .clone()
            .unwrap_or_else(|| format!("Group {}", &id.to_string()[..8]));
        let unified = f
            .group_types
            .as_ref()
            .is_some_and(|t| t.iter().any(|x| x.eq_ignore_ascii_case("unified")));
        let nick = f.mail_nickname.clone().unwrap_or_else(|| {
            display
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        });
        let seq = self.next_seq();
        let idx = self.push_group(Group {
            id,
            display_name: display.into(),
            description: f.description.clone().map(Into::into),
            mail_nickname: nick.into(),
            mail_enabled: f.mail_enabled.unwrap_or(unified),
            security_enabled: f.security_enabled.unwrap_or(!unified),
            unified,
            created: now,
            members: Vec::new(),
            seq,
            member_log: Vec::new(),
            life: Life::Active,
        })?;
        Ok(idx)
    }

    /// Resolves a member key: user id/UPN, group id, or group displayName.
    pub fn resolve_member(&self, key: &str) -> Option<MemberRef> {
        if let Some(i) = self.find_user(key) {
            return Some(user_ref(i));
        }
        if let Some(i) = self.find_group(key) {
            return Some(group_ref(i));
        }
        self.groups
            .iter()
            .position(|g| g.life != Life::HardDeleted && *g.display_name == *key)
            .map(|i| group_ref(i as u32))
    }

    /// Adds a direct member; returns false if it already was one.
    pub fn add_member(&mut self, g: u32, m: MemberRef) -> anyhow::Result<bool> {
        if decode_ref(m) == (true, g) {
            anyhow::bail!("a group cannot be a member of itself");
        }
        if self.groups[g as usize].members.contains(&m) {
            return Ok(false);
        }
        let seq = self.next_seq();
        let grp = &mut self.groups[g as usize];
        grp.members.push(m);
        grp.member_log.push((seq, m, true));
        Ok(true)
    }

    /// Removes a direct member; returns false if it was not one.
    pub fn remove_member(&mut self, g: u32, m: MemberRef) -> bool {
        let Some(pos) = self.groups[g as usize].members.iter().position(|&x| x == m) else {
            return false;
        };
        let seq = self.next_seq();
        let grp = &mut self.groups[g as usize];
        grp.members.swap_remove(pos);
        grp.member_log.push((seq, m, false));
        true
    }

    /// Soft- or hard-deletes a user; memberships of the user are removed (and logged), as
    /// Entra does on deletion.
    ///
    /// A soft-deleted user keeps its memberships for a restore: "If an item was accidentally
    /// deleted, you can fully restore the item."
    /// (<https://learn.microsoft.com/graph/api/directory-deleteditems-restore>).
    pub fn delete_user(&mut self, idx: u32, permanent: bool) {
        let m = user_ref(idx);
        if permanent {
            self.deleted_memberships.remove(&idx);
        } else {
            let groups: Vec<u32> = self
                .groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.members.contains(&m))
                .map(|(i, _)| i as u32)
                .collect();
            self.deleted_memberships.insert(idx, groups);
        }
        self.remove_from_all_groups(m);
        let seq = self.next_seq();
        let u = &mut self.users[idx as usize];
        u.life = if permanent {
            Life::HardDeleted
        } else {
            Life::SoftDeleted
        };
        u.seq = seq;
    }

    /// Restores a soft-deleted user.
    pub fn restore_user(&mut self, idx: u32) -> anyhow::Result<()> {
        if self.users[idx as usize].life != Life::SoftDeleted {
            anyhow::bail!("user is not in deleted items");
        }
        let seq = self.next_seq();
        self.user_changes
            .entry(idx)
            .or_default()
            .push((seq, ALL_CHANGED));
        let u = &mut self.users[idx as usize];
        u.life = Life::Active;
        u.seq = seq;
        // Memberships come back with the object (groups deleted meanwhile stay gone).
        for g in self.deleted_memberships.remove(&idx).unwrap_or_default() {
            if self.groups[g as usize].life == Life::Active {
                self.add_member(g, user_ref(idx))?;
            }
        }
        Ok(())
    }

    /// Soft- or hard-deletes a group (also removes it from parent groups). Only Microsoft 365
    /// (unified) groups go to deleted items; security groups are always deleted permanently:
    /// "you can fully restore the item. However, security groups cannot be restored."
    /// (<https://learn.microsoft.com/graph/api/directory-deleteditems-restore>; beta text:
    /// "This isn't applicable to security groups, which are deleted permanently.").
    pub fn delete_group(&mut self, idx: u32, permanent: bool) {
        self.remove_from_all_groups(group_ref(idx));
        let permanent = permanent || !self.groups[idx as usize].unified;
        let seq = self.next_seq();
        let g = &mut self.groups[idx as usize];
        g.life = if permanent {
            Life::HardDeleted
        } else {
            Life::SoftDeleted
        };
        g.seq = seq;
    }

    /// Restores a soft-deleted group.
    pub fn restore_group(&mut self, idx: u32) -> anyhow::Result<()> {
        if self.groups[idx as usize].life != Life::SoftDeleted {
            anyhow::bail!("group is not in deleted items");
        }
        let seq = self.next_seq();
        let g = &mut self.groups[idx as usize];
        g.life = Life::Active;
        g.seq = seq;
        Ok(())
    }

    /// Patches group properties.
    pub fn patch_group(&mut self, idx: u32, f: &GroupFields) {
        let seq = self.next_seq();
        let g = &mut self.groups[idx as usize];
        if let Some(v) = &f.display_name {
            g.display_name = v.clone().into();
        }
        if let Some(v) = &f.description {
            g.description = (!v.is_empty()).then(|| v.clone().into());
        }
        if let Some(v) = &f.mail_nickname {
            g.mail_nickname = v.clone().into();
        }
        if let Some(v) = f.mail_enabled {
            g.mail_enabled = v;
        }
        if let Some(v) = f.security_enabled {
            g.security_enabled = v;
        }
        if let Some(t) = &f.group_types {
            g.unified = t.iter().any(|x| x.eq_ignore_ascii_case("unified"));
        }
        g.seq = seq;
    }

    fn remove_from_all_groups(&mut self, m: MemberRef) {
        let parents: Vec<u32> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.members.contains(&m))
            .map(|(i, _)| i as u32)
            .collect();
        for p in parents {
            self.remove_member(p, m);
        }
    }

    /// All transitive members of a group (users and nested groups), each once, in
    /// breadth-first order. Cycle-safe.
    pub fn transitive_members(&self, g: u32) -> Vec<MemberRef> {
        let mut seen_groups = vec![g];
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([g]);
        while let Some(cur) = queue.pop_front() {
            for &m in &self.groups[cur as usize].members {
                if !self.ref_active(m) || !seen.insert(m) {
                    continue;
                }
                out.push(m);
                let (is_group, i) = decode_ref(m);
                if is_group && !seen_groups.contains(&i) {
                    seen_groups.push(i);
                    queue.push_back(i);
                }
            }
        }
        out
    }

    /// A stable digest of the directory contents (for determinism tests).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for u in &self.users {
            h.update(u.id.as_bytes());
            h.update(u.upn.as_bytes());
            h.update(u.display_name.as_bytes());
            h.update([
                u.account_enabled as u8,
                u.guest as u8,
                u.photo.is_some() as u8,
            ]);
        }
        for g in &self.groups {
            h.update(g.id.as_bytes());
            h.update(g.display_name.as_bytes());
            for m in &g.members {
                h.update(m.to_le_bytes());
            }
        }
        let d = h.finalize();
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Loads a fixture into an empty directory.
    pub fn load_fixture(&mut self, fx: &Fixture, now: i64) -> anyhow::Result<()> {
        for u in &fx.users {
            self.create_user(u, now)?;
        }
        let mut created = Vec::new();
        for g in &fx.groups {
            created.push(self.create_group(g, now)?);
        }
        for (g, idx) in fx.groups.iter().zip(created) {
            for key in g.members.iter().flatten() {
                let m = self
                    .resolve_member(key)
                    .ok_or_else(|| anyhow::anyhow!("fixture member '{key}' not found"))?;
                let grp = &mut self.groups[idx as usize];
                if !grp.members.contains(&m) && decode_ref(m) != (true, idx) {
                    grp.members.push(m);
                }
            }
        }
        Ok(())
    }
}
