//! Theoretical minimum requests per scenario, and the products' page sizes. Each function says
//! how it counts; results.md repeats it.

use serde_json::Value;
use std::collections::BTreeSet;

/// Objects per Graph delta page and `members@delta` entries per page: the Graph emulator's
/// defaults (`--delta-page-size 100`, `--delta-members-per-page 500`), which the server, not
/// the client, chooses.
pub(crate) const GRAPH_DELTA_PAGE: u64 = 100;
/// See [`GRAPH_DELTA_PAGE`].
pub(crate) const GRAPH_MEMBERS_PAGE: u64 = 500;
/// A no-change run: one token, one users delta and one groups delta request (each answers
/// with the next deltaLink and nothing else).
pub(crate) const GRAPH_NO_CHANGE: u64 = 3;
/// The Graph connector reads the users and the groups delta chains at the same time; inside a
/// chain each page's link comes from the previous page, so two requests at most are in flight.
pub(crate) const GRAPH_PARALLEL_READS: f64 = 2.0;
/// Users per Bitbucket `add-users` request (the connector's batch).
const BITBUCKET_BATCH: u64 = 500;

/// The target product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Product {
    Jira,
    Confluence,
    Bitbucket,
    Crowd,
}

impl Product {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
            Product::Bitbucket => "bitbucket",
            Product::Crowd => "crowd",
        }
    }

    /// The emulator's default credential (its `--pat`, or Crowd's application password).
    pub(crate) fn secret(self) -> &'static str {
        match self {
            Product::Crowd => "usersync",
            _ => "emulator-pat",
        }
    }

    /// The `auth` lines of the target's configuration.
    pub(crate) fn auth_line(self) -> &'static str {
        match self {
            Product::Crowd => "auth = \"crowd_app\"\nusername = \"usersync\"",
            _ => "auth = \"bearer\"",
        }
    }

    /// The licence group, used as the access group (Crowd has none).
    pub(crate) fn licence_group(self) -> Option<&'static str> {
        match self {
            Product::Jira => Some("jira-software-users"),
            Product::Confluence => Some("confluence-users"),
            Product::Bitbucket => Some("stash-users"),
            Product::Crowd => None,
        }
    }

    /// Largest page of each listing: (users, groups — `None` = all in one request, members of
    /// one group). Jira lists all groups in one `groups/picker` request and caps `group/member`
    /// at 50; Confluence caps its listings at 200; Bitbucket at 1000 (`page.max.size`); Crowd
    /// at 1000 per the connector's request.
    fn pages(self) -> (u64, Option<u64>, u64) {
        match self {
            Product::Jira => (1000, None, 50),
            Product::Confluence => (200, Some(200), 200),
            Product::Bitbucket => (1000, Some(1000), 1000),
            Product::Crowd => (1000, Some(1000), 1000),
        }
    }

    /// (can deactivate, has avatars, batch membership).
    fn caps(self) -> (bool, bool, bool) {
        match self {
            Product::Jira => (true, true, false),
            Product::Confluence => (true, false, false),
            Product::Bitbucket => (false, true, true),
            Product::Crowd => (true, false, false),
        }
    }
}

/// A full Graph read: one token, the users delta pages and the groups delta pages (at least
/// one per 100 groups and one per 500 member entries).
pub(crate) fn graph_full_read(users: u64, groups: u64, memberships: u64) -> u64 {
    1 + users.div_ceil(GRAPH_DELTA_PAGE).max(1)
        + groups
            .div_ceil(GRAPH_DELTA_PAGE)
            .max(memberships.div_ceil(GRAPH_MEMBERS_PAGE))
            .max(1)
}

/// A delta read after a small change: one token and, per chain, one page per 100 changed
/// objects (at least one). Changed objects are estimated from the plan: distinct source users
/// of user operations, and groups named by group or membership operations (capped by the
/// tenant's counts).
pub(crate) fn graph_delta(ops: &[Value], users: u64, groups: u64) -> u64 {
    let mut u = BTreeSet::new();
    let mut g = BTreeSet::new();
    for op in ops {
        if let Some(sid) = op.get("source_id").and_then(Value::as_str)
            && !op_kind(op).contains("group")
        {
            u.insert(sid);
        }
        if let Some(name) = op
            .get("group")
            .or_else(|| op.get("name"))
            .and_then(Value::as_str)
        {
            g.insert(name);
        }
    }
    let pages = |n: u64| n.div_ceil(GRAPH_DELTA_PAGE).max(1);
    1 + pages((u.len() as u64).min(users)) + pages((g.len() as u64).min(groups))
}

/// A full read of the target at the product's largest pages: the user pages, the group pages,
/// and per group its member pages (at least one each). `state` is the emulator's
/// `/_emulator/state` before the run.
pub(crate) fn target_full_read(p: Product, state: &Value) -> u64 {
    let (user_page, group_page, member_page) = p.pages();
    let n = |k: &str| state.get(k).and_then(Value::as_array).map_or(0, Vec::len) as u64;
    let users = n("users").div_ceil(user_page).max(1);
    let groups = group_page.map_or(1, |gp| n("groups").div_ceil(gp).max(1));
    let members: u64 = state
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("name").and_then(Value::as_str))
        .map(|name| {
            let m = state
                .pointer(&format!(
                    "/memberships/{}",
                    name.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as u64;
            m.div_ceil(member_page).max(1)
        })
        .sum();
    users + groups + members
}

/// Reads proportional to a change: one read per distinct account and per distinct group the
/// plan touches (the changed objects, each re-read before a write).
pub(crate) fn touched_objects(ops: &[Value]) -> u64 {
    let mut accounts = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for op in ops {
        for k in ["username", "from"] {
            if let Some(u) = op.get(k).and_then(Value::as_str) {
                accounts.insert(u.to_lowercase());
            }
        }
        if let Some(u) = op.pointer("/account/username").and_then(Value::as_str) {
            accounts.insert(u.to_lowercase());
        }
        if let Some(g) = op.get("group").and_then(Value::as_str) {
            groups.insert(g.to_lowercase());
        }
    }
    (accounts.len() + groups.len()) as u64
}

/// Write requests the plan needs at the least: none for adoptions (links only) and for
/// (de)activations on a product that cannot deactivate (the planner removed memberships
/// instead), none for avatars on a product without them; one per user for membership adds
/// (per 500 users with Bitbucket's batch add); one for every other operation.
pub(crate) fn writes(p: Product, ops: &[Value]) -> u64 {
    let (deactivate, avatars, batch) = p.caps();
    ops.iter()
        .map(|op| match op_kind(op) {
            "adopt_user" | "adopt_group" => 0,
            "reactivate_user" | "deactivate_user" if !deactivate => 0,
            "set_avatar" if !avatars => 0,
            "add_members" => {
                let n = op
                    .get("usernames")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len) as u64;
                if batch {
                    n.div_ceil(BITBUCKET_BATCH)
                } else {
                    n
                }
            }
            _ => 1,
        })
        .sum()
}

fn op_kind(op: &Value) -> &str {
    op.get("op").and_then(Value::as_str).unwrap_or("")
}

/// [`writes`] from the report's `counts` when it does not list its operations (a paged or
/// streamed report): the same rules per kind; Bitbucket's batched adds are approximated as one
/// request per 500 added memberships.
pub(crate) fn writes_from_counts(p: Product, counts: &Value) -> Option<u64> {
    let (deactivate, avatars, batch) = p.caps();
    let n = |k: &str| counts.get(k).and_then(Value::as_u64);
    let mut total = 0;
    for k in [
        "users_created",
        "users_renamed",
        "users_updated",
        "users_deleted",
        "groups_created",
        "groups_deleted",
        "memberships_removed",
    ] {
        total += n(k)?;
    }
    if deactivate {
        total += n("users_reactivated")? + n("users_deactivated")?;
    }
    if avatars {
        total += n("avatars_set")?;
    }
    let added = n("memberships_added")?;
    total += if batch {
        added.div_ceil(BITBUCKET_BATCH)
    } else {
        added
    };
    Some(total)
}
