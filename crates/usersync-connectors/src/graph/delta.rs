//! Applying Graph delta pages to a working copy of the directory, and the persisted cursor.
//!
//! Wire format: <https://learn.microsoft.com/graph/delta-query-users>,
//! <https://learn.microsoft.com/graph/delta-query-groups>,
//! <https://learn.microsoft.com/graph/api/group-delta>. Pure functions, unit-tested against the
//! documented payloads.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use usersync_core::model::{SourceGroup, SourceUser};

/// User properties the mapping needs (`$select`; `id` is always returned).
pub const USER_SELECT: &str = "id,userPrincipalName,mail,givenName,surname,displayName,accountEnabled,onPremisesSamAccountName,employeeId,userType";

/// Group properties tracked by the group delta (`members` makes Graph return `members@delta`).
pub const GROUP_SELECT: &str = "displayName,description,members";

/// What a [`Cursor`] was read in: the whole tenant (delta) or selected groups (no delta).
/// Stored as `"tenant"` / `"scoped"`; anything else makes the cursor unreadable, which forces a
/// full read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CursorMode {
    /// `/users/delta` + `/groups/delta` of the whole directory.
    #[default]
    Tenant,
    /// Selected groups' transitive members, read in full every time.
    Scoped,
}

/// The connector's persisted state (`SourceSyncState.cursor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Format version (1).
    pub version: u32,
    /// Whole tenant (delta) or selected groups (no delta).
    pub mode: CursorMode,
    /// `@odata.deltaLink` of the last complete `/users/delta` round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_delta_link: Option<String>,
    /// `@odata.deltaLink` of the last complete `/groups/delta` round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_delta_link: Option<String>,
    /// When the last full read finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_read: Option<String>,
    /// What the state was read with (Graph URL, scope, pictures); a change forces a full read.
    #[serde(default)]
    pub fingerprint: String,
}

impl Cursor {
    /// Parses the cursor; `None` for null/foreign values.
    pub fn from_value(v: &Value) -> Option<Cursor> {
        let c: Cursor = serde_json::from_value(v.clone()).ok()?;
        (c.version == 1).then_some(c)
    }

    /// As JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One page of a Graph collection.
#[derive(Debug, Default)]
pub struct Page {
    /// Items.
    pub value: Vec<Value>,
    /// Next page, followed verbatim.
    pub next_link: Option<String>,
    /// Present on the last page of a delta round.
    pub delta_link: Option<String>,
}

/// Which links a listing's pages may carry (<https://learn.microsoft.com/graph/paging>,
/// <https://learn.microsoft.com/graph/delta-query-overview>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A delta round: every page has exactly one of `@odata.nextLink` / `@odata.deltaLink`.
    Delta,
    /// A plain collection: `@odata.nextLink` on all but the last page, never a deltaLink.
    Plain,
}

impl Page {
    /// Splits a page body, checking it has the documented shape: a `value` array of objects
    /// with a string `id`, and links that are strings, as `listing` allows. `Err` says what is
    /// wrong; such a page must make the read incomplete, never count as an empty page.
    pub fn parse(mut v: Value, listing: Listing) -> Result<Page, String> {
        let Some(obj) = v.as_object_mut() else {
            return Err(format!("the body is {}, not a JSON object", kind_of(&v)));
        };
        let value = match obj.remove("value") {
            Some(Value::Array(a)) => a,
            Some(other) => return Err(format!("`value` is {}, not an array", kind_of(&other))),
            None => return Err("`value` is missing".into()),
        };
        if let Some(i) = value
            .iter()
            .position(|o| o.get("id").and_then(Value::as_str).is_none())
        {
            return Err(format!("item {} of `value` has no string `id`", i + 1));
        }
        let mut link = |k: &str| match obj.remove(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{k}` is {}, not a string", kind_of(&other))),
        };
        let next_link = link("@odata.nextLink")?;
        let delta_link = link("@odata.deltaLink")?;
        match (listing, &next_link, &delta_link) {
            (Listing::Delta, Some(_), Some(_)) => {
                Err("the page carries both @odata.nextLink and @odata.deltaLink".into())
            }
            (Listing::Delta, None, None) => {
                Err("the page carries neither @odata.nextLink nor @odata.deltaLink".into())
            }
            (Listing::Plain, _, Some(_)) => {
                Err("a plain listing's page carries an @odata.deltaLink".into())
            }
            _ => Ok(Page {
                value,
                next_link,
                delta_link,
            }),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn removed(obj: &Value) -> bool {
    obj.get("@removed").is_some()
}

/// Sets `slot` from `obj[key]` if the key is present (`null` clears). Absent keys keep the old
/// value: with `Prefer: return=minimal`, or for never-set properties, Graph omits them.
fn merge_opt(slot: &mut Option<String>, obj: &Value, key: &str) {
    if let Some(v) = obj.get(key) {
        *slot = v.as_str().map(str::to_string);
    }
}

/// The users side of a read.
#[derive(Debug, Default, Clone)]
pub struct UserSet {
    /// Users by id.
    pub users: BTreeMap<String, SourceUser>,
    /// Ids created or changed in this read.
    pub changed: BTreeSet<String>,
    /// Ids removed in this read (`@removed`, reason `changed` = soft delete or `deleted`).
    pub removed: BTreeSet<String>,
}

impl UserSet {
    /// Applies one page of `/users/delta` (or a plain user listing).
    pub fn apply(&mut self, items: &[Value]) {
        for obj in items {
            let Some(id) = obj.get("id").and_then(Value::as_str) else {
                continue;
            };
            if removed(obj) {
                // Soft- and hard-deleted users are both gone for sync purposes; a restored user
                // reappears without the annotation and is re-added under the same id.
                self.users.remove(id);
                self.changed.remove(id);
                self.removed.insert(id.to_string());
                continue;
            }
            let u = self
                .users
                .entry(id.to_string())
                .or_insert_with(|| SourceUser {
                    id: id.to_string(),
                    upn: String::new(),
                    mail: None,
                    given_name: None,
                    surname: None,
                    display_name: None,
                    enabled: true,
                    sam_account_name: None,
                    employee_id: None,
                    photo: None,
                });
            if let Some(upn) = obj.get("userPrincipalName").and_then(Value::as_str) {
                u.upn = upn.to_string();
            }
            merge_opt(&mut u.mail, obj, "mail");
            merge_opt(&mut u.given_name, obj, "givenName");
            merge_opt(&mut u.surname, obj, "surname");
            merge_opt(&mut u.display_name, obj, "displayName");
            merge_opt(&mut u.sam_account_name, obj, "onPremisesSamAccountName");
            merge_opt(&mut u.employee_id, obj, "employeeId");
            if let Some(b) = obj.get("accountEnabled").and_then(Value::as_bool) {
                u.enabled = b;
            }
            self.removed.remove(id);
            self.changed.insert(id.to_string());
        }
    }
}

/// The groups side of a read.
#[derive(Debug, Default, Clone)]
pub struct GroupSet {
    /// Groups by id.
    pub groups: BTreeMap<String, SourceGroup>,
    /// Ids removed in this read.
    pub removed: BTreeSet<String>,
    /// Ids created or changed in this read.
    pub changed: BTreeSet<String>,
}

impl GroupSet {
    /// Applies one page of `/groups/delta?$select=displayName,description,members`. A group may
    /// appear on several pages, each with a slice of `members@delta`; slices are merged.
    pub fn apply(&mut self, items: &[Value]) {
        for obj in items {
            let Some(id) = obj.get("id").and_then(Value::as_str) else {
                continue;
            };
            if removed(obj) {
                self.groups.remove(id);
                self.changed.remove(id);
                self.removed.insert(id.to_string());
                continue;
            }
            let g = self
                .groups
                .entry(id.to_string())
                .or_insert_with(|| SourceGroup {
                    id: id.to_string(),
                    display_name: String::new(),
                    description: None,
                    member_users: BTreeSet::new(),
                    member_groups: BTreeSet::new(),
                });
            if let Some(name) = obj.get("displayName").and_then(Value::as_str) {
                g.display_name = name.to_string();
            }
            merge_opt(&mut g.description, obj, "description");
            if let Some(Value::Array(members)) = obj.get("members@delta") {
                for m in members {
                    let Some(mid) = m.get("id").and_then(Value::as_str) else {
                        continue;
                    };
                    let ty = m.get("@odata.type").and_then(Value::as_str).unwrap_or("");
                    if removed(m) {
                        // Removal from the group, or the member object was deleted.
                        g.member_users.remove(mid);
                        g.member_groups.remove(mid);
                        continue;
                    }
                    match ty {
                        "#microsoft.graph.user" | "" => {
                            g.member_users.insert(mid.to_string());
                        }
                        "#microsoft.graph.group" => {
                            g.member_groups.insert(mid.to_string());
                        }
                        // Devices, contacts and service principals are not synced.
                        _ => {}
                    }
                }
            }
            self.removed.remove(id);
            self.changed.insert(id.to_string());
        }
    }

    /// Drops memberships of users/groups removed in this read (Graph normally reports them in
    /// `members@delta` too; this keeps the snapshot consistent if it doesn't).
    pub fn prune(&mut self, removed_users: &BTreeSet<String>) {
        if removed_users.is_empty() && self.removed.is_empty() {
            return;
        }
        for g in self.groups.values_mut() {
            g.member_users.retain(|u| !removed_users.contains(u));
            g.member_groups.retain(|x| !self.removed.contains(x));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_user_delta_page() {
        // https://learn.microsoft.com/graph/delta-query-users — initial page sample.
        let page = Page::parse(json!({
          "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(displayName,givenName,surname)",
          "@odata.nextLink":"https://graph.microsoft.com/v1.0/users/delta?$skiptoken=oEBwdSP6uehIAxQOWq_3Ksh",
          "value": [
            {"displayName":"Cameron White","givenName":"Cameron","surname":"White","id":"ffff7b1a-13b6-477b-8c0c-380905cd99f7"},
            {"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","@removed":{"reason":"deleted"}},
            {"displayName":"Conf Room Adams","id":"6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"}
          ]
        }), Listing::Delta).unwrap();
        assert!(page.next_link.as_deref().unwrap().contains("$skiptoken="));
        assert!(page.delta_link.is_none());
        let mut set = UserSet::default();
        set.users.insert(
            "86462606-fde0-4fc4-9e0c-a20eb73e54c6".into(),
            SourceUser {
                id: "86462606-fde0-4fc4-9e0c-a20eb73e54c6".into(),
                upn: "x".into(),
                mail: None,
                given_name: None,
                surname: None,
                display_name: None,
                enabled: true,
                sam_account_name: None,
                employee_id: None,
                photo: None,
            },
        );
        set.apply(&page.value);
        assert_eq!(set.users.len(), 2);
        assert!(set.removed.contains("86462606-fde0-4fc4-9e0c-a20eb73e54c6"));
        let cam = &set.users["ffff7b1a-13b6-477b-8c0c-380905cd99f7"];
        assert_eq!(cam.given_name.as_deref(), Some("Cameron"));
        assert_eq!(
            set.users["6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"].given_name,
            None
        );
        // A later change that nulls a property and disables the account.
        set.apply(&[json!({"id":"ffff7b1a-13b6-477b-8c0c-380905cd99f7","givenName":null,"accountEnabled":false})]);
        let cam = &set.users["ffff7b1a-13b6-477b-8c0c-380905cd99f7"];
        assert_eq!(cam.given_name, None);
        assert_eq!(cam.surname.as_deref(), Some("White"));
        assert!(!cam.enabled);
    }

    #[test]
    fn documented_group_delta_with_members() {
        // https://learn.microsoft.com/graph/delta-query-groups — members@delta sample.
        let page = Page::parse(json!({
          "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups",
          "@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=sZwAFZibx",
          "value": [ {
            "displayName": "TestGroup3", "description": "A test group for change tracking",
            "id": "2e5807ce-58f3-4a94-9b37-ffff2e085957",
            "members@delta": [
              {"@odata.type":"#microsoft.graph.user","id":"632f6bb2-3ec8-4c1f-9073-0027a8c6859","@removed":{"reason":"deleted"}},
              {"@odata.type":"#microsoft.graph.user","id":"37de1ae3-408f-4702-8636-20824abda004"} ] } ]
        }), Listing::Delta).unwrap();
        assert!(page.delta_link.is_some());
        let mut set = GroupSet::default();
        set.apply(&[
            json!({"id":"2e5807ce-58f3-4a94-9b37-ffff2e085957","displayName":"Old","members@delta":[
            {"@odata.type":"#microsoft.graph.user","id":"632f6bb2-3ec8-4c1f-9073-0027a8c6859"},
            {"@odata.type":"#microsoft.graph.group","id":"g2"},
            {"@odata.type":"#microsoft.graph.device","id":"d1"}]}),
        ]);
        set.apply(&page.value);
        let g = &set.groups["2e5807ce-58f3-4a94-9b37-ffff2e085957"];
        assert_eq!(g.display_name, "TestGroup3");
        assert_eq!(
            g.description.as_deref(),
            Some("A test group for change tracking")
        );
        assert_eq!(
            g.member_users.iter().collect::<Vec<_>>(),
            vec!["37de1ae3-408f-4702-8636-20824abda004"]
        );
        assert!(g.member_groups.contains("g2"));
    }

    #[test]
    fn group_split_over_pages_merges_and_removal() {
        let mut set = GroupSet::default();
        set.apply(&[json!({"id":"g","displayName":"Big","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"}]})]);
        set.apply(&[
            json!({"id":"g","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u2"}]}),
        ]);
        assert_eq!(set.groups["g"].member_users.len(), 2);
        assert_eq!(set.groups["g"].display_name, "Big");
        set.apply(&[json!({"id":"g","@removed":{"reason":"changed"}})]);
        assert!(set.groups.is_empty());
        assert!(set.removed.contains("g"));
    }

    #[test]
    fn fixtures_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/graph");
        let text = std::fs::read_to_string(format!("{dir}/users_delta_page.json")).unwrap();
        let page = Page::parse(serde_json::from_str(&text).unwrap(), Listing::Delta).unwrap();
        let mut set = UserSet::default();
        set.apply(&page.value);
        assert_eq!(set.users.len(), 2);
        assert_eq!(set.removed.len(), 1);
    }

    #[test]
    fn cursor_roundtrip() {
        let c = Cursor {
            version: 1,
            mode: CursorMode::Tenant,
            users_delta_link: Some("u".into()),
            groups_delta_link: None,
            last_full_read: None,
            fingerprint: "f".into(),
        };
        assert_eq!(Cursor::from_value(&c.to_value()), Some(c.clone()));
        assert_eq!(Cursor::from_value(&Value::Null), None);
        // Stored text of the mode is unchanged.
        assert_eq!(c.to_value()["mode"], "tenant");
        let mut v = c.to_value();
        v["mode"] = "scoped".into();
        assert_eq!(Cursor::from_value(&v).unwrap().mode, CursorMode::Scoped);
        v["mode"] = "sideways".into();
        assert_eq!(Cursor::from_value(&v), None);
    }

    #[test]
    fn malformed_pages_are_rejected() {
        let ok = json!({"value":[{"id":"a"}],"@odata.nextLink":"https://g/x"});
        assert!(Page::parse(ok.clone(), Listing::Delta).is_ok());
        assert!(Page::parse(ok, Listing::Plain).is_ok());
        let last = json!({"value":[]});
        assert!(Page::parse(last.clone(), Listing::Plain).is_ok());
        let cases = [
            (
                json!({"value":null,"@odata.deltaLink":"d"}),
                "`value` is null",
            ),
            (
                json!({"value":{},"@odata.deltaLink":"d"}),
                "`value` is an object",
            ),
            (json!({"@odata.deltaLink":"d"}), "`value` is missing"),
            (json!([]), "not a JSON object"),
            (json!({"value":[{"x":1}],"@odata.deltaLink":"d"}), "item 1"),
            (json!({"value":[],"@odata.nextLink":5}), "not a string"),
            (
                json!({"value":[],"@odata.nextLink":"n","@odata.deltaLink":"d"}),
                "both",
            ),
            (last, "neither"),
        ];
        for (body, want) in cases {
            let e = Page::parse(body.clone(), Listing::Delta).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        let e =
            Page::parse(json!({"value":[],"@odata.deltaLink":"d"}), Listing::Plain).unwrap_err();
        assert!(e.contains("deltaLink"), "{e}");
    }
}
