//! Graph property projection of users and groups (`$select`, default property sets).

use serde_json::{Map, Value, json};

use super::model::{Directory, Group, MemberRef, User, decode_ref};
use super::odata::{GResult, GraphError, unknown_property};

/// Known user properties (subset of the v1.0 schema).
/// <https://learn.microsoft.com/graph/api/resources/user>
pub const USER_PROPS: &[&str] = &[
    "id",
    "accountEnabled",
    "businessPhones",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeType",
    "externalUserState",
    "givenName",
    "identities",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "postalCode",
    "preferredLanguage",
    "proxyAddresses",
    "securityIdentifier",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];
/// Returned without `$select`. <https://learn.microsoft.com/graph/api/user-list>
pub const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];
/// Not listable: `$select` of these on a collection → 501.
/// <https://learn.microsoft.com/graph/api/user-list> ("Properties that can't be returned
/// within a user collection").
pub const USER_NOT_LISTABLE: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
    "mailboxSettings",
];
/// Known group properties; all are in the default set.
/// <https://learn.microsoft.com/graph/api/group-list> (response example).
pub const GROUP_PROPS: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "uniqueName",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
];

/// Resolves `$select` against known names (canonical casing). `collection` enables the 501 for
/// non-listable user properties.
pub fn resolve_select(
    sel: Option<&[String]>,
    known: &[&'static str],
    default: &[&'static str],
    ty: &str,
    collection: bool,
) -> GResult<Vec<&'static str>> {
    let Some(sel) = sel else {
        return Ok(default.to_vec());
    };
    let mut out = Vec::new();
    for s in sel {
        if s == "*" {
            out.extend_from_slice(known);
            continue;
        }
        if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(s)) {
            out.push(*k);
        } else if collection
            && ty == "user"
            && USER_NOT_LISTABLE.iter().any(|k| k.eq_ignore_ascii_case(s))
        {
            // https://learn.microsoft.com/graph/delta-query-overview (properties stored outside
            // the main data store → 501).
            return Err(GraphError::new(
                501,
                "NotImplemented",
                "This operation target is not yet supported.",
            ));
        } else {
            return Err(unknown_property(s, ty));
        }
    }
    if !out.contains(&"id") {
        out.push("id");
    }
    Ok(out)
}

pub(crate) fn s(v: &Option<Box<str>>) -> Value {
    v.as_deref()
        .map_or(Value::Null, |x| Value::String(x.to_string()))
}

pub(crate) fn iso(t: i64) -> Value {
    jiff::Timestamp::from_second(t)
        .map(|t| Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

/// Windows SID form of an Entra object id (`S-1-12-1-…`).
pub(crate) fn sid(id: &uuid::Uuid) -> String {
    let b = id.as_bytes();
    let p = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", p(0), p(4), p(8), p(12))
}

/// One user property by canonical name.
pub fn user_prop(u: &User, name: &str, dir: &Directory) -> Option<Value> {
    Some(match name {
        "id" => Value::String(u.id.to_string()),
        "accountEnabled" => Value::Bool(u.account_enabled),
        "businessPhones" | "otherMails" => json!([]),
        "city"
        | "companyName"
        | "country"
        | "creationType"
        | "employeeHireDate"
        | "employeeType"
        | "mobilePhone"
        | "officeLocation"
        | "onPremisesDistinguishedName"
        | "onPremisesDomainName"
        | "onPremisesImmutableId"
        | "onPremisesLastSyncDateTime"
        | "onPremisesSecurityIdentifier"
        | "onPremisesSyncEnabled"
        | "onPremisesUserPrincipalName"
        | "postalCode"
        | "state"
        | "streetAddress"
        | "usageLocation"
        | "deletedDateTime" => Value::Null,
        "preferredLanguage" => json!("en-US"),
        "createdDateTime" => iso(u.created),
        "department" => s(&u.department),
        "displayName" => Value::String(u.display_name.to_string()),
        "employeeId" => s(&u.employee_id),
        "externalUserState" => {
            if u.guest {
                json!("Accepted")
            } else {
                Value::Null
            }
        }
        "givenName" => s(&u.given_name),
        "identities" => {
            json!([{"signInType": "userPrincipalName", "issuer": dir.domain, "issuerAssignedId": u.upn.to_string()}])
        }
        "jobTitle" => s(&u.job_title),
        "mail" => s(&u.mail),
        "mailNickname" => Value::String(u.upn.split('@').next().unwrap_or("").to_string()),
        "onPremisesExtensionAttributes" => {
            let mut m = Map::new();
            for i in 1..=15 {
                m.insert(format!("extensionAttribute{i}"), Value::Null);
            }
            Value::Object(m)
        }
        "onPremisesSamAccountName" => s(&u.sam),
        "proxyAddresses" => match &u.mail {
            Some(m) => json!([format!("SMTP:{m}")]),
            None => json!([]),
        },
        "securityIdentifier" => Value::String(sid(&u.id)),
        "surname" => s(&u.surname),
        "userPrincipalName" => Value::String(u.upn.to_string()),
        "userType" => json!(if u.guest { "Guest" } else { "Member" }),
        _ => return None,
    })
}

/// One group property by canonical name.
pub fn group_prop(g: &Group, name: &str, dir: &Directory) -> Option<Value> {
    let mail = g.mail(&dir.domain);
    Some(match name {
        "id" => Value::String(g.id.to_string()),
        "classification"
        | "deletedDateTime"
        | "expirationDateTime"
        | "isAssignableToRole"
        | "membershipRule"
        | "membershipRuleProcessingState"
        | "onPremisesDomainName"
        | "onPremisesLastSyncDateTime"
        | "onPremisesNetBiosName"
        | "onPremisesSamAccountName"
        | "onPremisesSecurityIdentifier"
        | "onPremisesSyncEnabled"
        | "preferredDataLocation"
        | "preferredLanguage"
        | "theme"
        | "uniqueName" => Value::Null,
        "createdDateTime" | "renewedDateTime" => iso(g.created),
        "creationOptions"
        | "resourceBehaviorOptions"
        | "resourceProvisioningOptions"
        | "onPremisesProvisioningErrors"
        | "serviceProvisioningErrors" => json!([]),
        "description" => s(&g.description),
        "displayName" => Value::String(g.display_name.to_string()),
        "groupTypes" => {
            if g.unified {
                json!(["Unified"])
            } else {
                json!([])
            }
        }
        "mail" => mail.clone().map_or(Value::Null, Value::String),
        "mailEnabled" => Value::Bool(g.mail_enabled),
        "mailNickname" => Value::String(g.mail_nickname.to_string()),
        "proxyAddresses" => match &mail {
            Some(m) => json!([format!("SMTP:{m}")]),
            None => json!([]),
        },
        "securityEnabled" => Value::Bool(g.security_enabled),
        "securityIdentifier" => Value::String(sid(&g.id)),
        "visibility" => {
            if g.unified {
                json!("Private")
            } else {
                Value::Null
            }
        }
        _ => return None,
    })
}

pub fn user_json(u: &User, sel: &[&str], dir: &Directory) -> Map<String, Value> {
    let mut m = Map::new();
    for p in sel {
        if let Some(v) = user_prop(u, p, dir) {
            m.insert((*p).to_string(), v);
        }
    }
    m
}

pub fn group_json(g: &Group, sel: &[&str], dir: &Directory) -> Map<String, Value> {
    let mut m = Map::new();
    for p in sel {
        if let Some(v) = group_prop(g, p, dir) {
            m.insert((*p).to_string(), v);
        }
    }
    m
}

/// A polymorphic directoryObject with `@odata.type`; `sel` names are applied to whichever
/// type the member is (unknown-for-that-type names are skipped).
pub fn member_json(dir: &Directory, r: MemberRef, sel: &[&str], limited_users: bool) -> Value {
    let (is_group, i) = decode_ref(r);
    let mut m = if is_group {
        let g = &dir.groups[i as usize];
        let mut m = group_json(g, sel, dir);
        m.insert("@odata.type".into(), json!("#microsoft.graph.group"));
        m
    } else if limited_users {
        // Limited information: only `@odata.type` and `id`, other properties null.
        // https://learn.microsoft.com/graph/permissions-overview#limited-information-returned-for-inaccessible-member-objects
        let mut m: Map<String, Value> = sel
            .iter()
            .filter(|p| USER_PROPS.contains(p))
            .map(|p| ((*p).to_string(), Value::Null))
            .collect();
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m
    } else {
        let u = &dir.users[i as usize];
        let mut m = user_json(u, sel, dir);
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m
    };
    m.insert("id".into(), Value::String(dir.ref_id(r).to_string()));
    Value::Object(m)
}
