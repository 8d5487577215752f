//! Planner scale benchmark (not a timed test): 300,000 users, 30,000 groups, 3,000,000
//! memberships, generated deterministically. Times mapping + scope (desired state) and the plan
//! for an initial sync (empty target; with and without batch membership, as Jira has none) and
//! a no-change re-plan (target = desired), and prints
//! op counts and peak RSS. Run: `cargo bench -p usersync-core --bench plan_scale`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use usersync_core::config::SyncSettings;
use usersync_core::desired::desired_state;
use usersync_core::link::{GroupLink, LinkTable, UserLink};
use usersync_core::model::{
    PhotoRef, SourceGroup, SourceSnapshot, SourceUser, TargetAccount, TargetGroup, TargetSnapshot,
};
use usersync_core::plan::{Plan, PlanInput, plan_desired};
use usersync_core::ports::TargetCapabilities;
use usersync_core::testkit::full_capabilities;

const USERS: usize = 300_000;
const GROUPS: usize = 30_000;
const MEMBERS_PER_GROUP: usize = 100;

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn source() -> SourceSnapshot {
    let users = (0..USERS)
        .map(|i| SourceUser {
            id: format!("{i:08x}-0000-4000-8000-{i:012x}"),
            upn: format!("user{i}@corp.example.com"),
            mail: Some(format!("user{i}@corp.example.com")),
            given_name: Some("User".into()),
            surname: Some(format!("{i}")),
            display_name: Some(format!("User {i}")),
            enabled: i % 100 != 0,
            sam_account_name: None,
            employee_id: None,
            photo: (i % 2 == 0).then(|| PhotoRef {
                tag: format!("etag-{i}"),
            }),
        })
        .collect::<Vec<_>>();
    let mut rng = Lcg(42);
    let groups = (0..GROUPS)
        .map(|j| {
            let mut member_users = BTreeSet::new();
            while member_users.len() < MEMBERS_PER_GROUP {
                member_users.insert(users[rng.next() as usize % USERS].id.clone());
            }
            // Sparse nesting: every tenth group contains the next one.
            let member_groups = if j % 10 == 0 && j + 1 < GROUPS {
                BTreeSet::from([format!("g{}", j + 1)])
            } else {
                BTreeSet::new()
            };
            SourceGroup {
                id: format!("g{j}"),
                display_name: format!("Group {j}"),
                description: None,
                member_users,
                member_groups,
            }
        })
        .collect();
    SourceSnapshot {
        users,
        groups,
        complete: true,
        warnings: vec![],
    }
}

/// User + system CPU time of this process (ms), so figures survive a busy machine.
fn cpu_ms() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`: utime and stime are the 12th and 13th.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some((rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?) * 10)
        })
        .unwrap_or(0)
}

/// Runs `f`, printing wall and CPU time.
fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let (t, c) = (Instant::now(), cpu_ms());
    let out = f();
    print!(
        "{label:<26} wall {:>8.2?}  cpu {:>6} ms",
        t.elapsed(),
        cpu_ms() - c
    );
    out
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "n/a".into())
}

fn summary(p: &Plan) -> String {
    let c = &p.counts;
    format!(
        "{} ops: {} users created, {} groups created, {} memberships added ({} AddMembers ops), {} avatars, {} unchanged, held: {}",
        p.ops.len(),
        c.users_created,
        c.groups_created,
        c.memberships_added,
        p.ops
            .iter()
            .filter(|o| matches!(o.kind, usersync_core::plan::OpKind::AddMembers { .. }))
            .count(),
        c.avatars_set,
        c.users_unchanged,
        p.held.is_some()
    )
}

fn main() {
    let mut settings = SyncSettings::default();
    settings.scope.flatten_nested = true;
    let caps = full_capabilities();
    let now_ms = 1_767_225_600_000;

    let t = Instant::now();
    let src = source();
    let memberships: usize = src.groups.iter().map(|g| g.member_users.len()).sum();
    println!(
        "generate: {:>8.2?}  ({} users, {} groups, {} direct memberships)",
        t.elapsed(),
        src.users.len(),
        src.groups.len(),
        memberships
    );

    // Initial sync: empty target, no links.
    let empty_t = TargetSnapshot::default();
    let empty_l = LinkTable::default();
    let scope = timed("initial  scope alone", || {
        usersync_core::scope::resolve_scope(&src, &settings.scope).expect("valid scope")
    });
    println!();
    drop(scope);
    let desired = timed("initial  mapping+scope", || {
        desired_state(&src, &settings, &caps).expect("valid settings")
    });
    println!();
    let input = PlanInput {
        source: &src,
        target: &empty_t,
        links: &empty_l,
        settings: &settings,
        capabilities: &caps,
        now_ms,
    };
    let initial = timed("initial  plan", || plan_desired(&input, &desired));
    println!("\n    {}", summary(&initial));
    drop(initial);
    // Jira-like: no batch membership, so one AddMembers operation per membership (millions).
    let jira = TargetCapabilities {
        batch_membership: false,
        ..caps.clone()
    };
    let input_jira = PlanInput {
        capabilities: &jira,
        ..input
    };
    let unbatched = timed("initial  plan (no batch)", || {
        plan_desired(&input_jira, &desired)
    });
    println!("\n    {}", summary(&unbatched));
    println!("peak RSS so far (VmHWM): {}", peak_rss());
    drop(unbatched);

    // Target = desired: every account and group exists, linked, with its memberships.
    let mut groups_of: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in desired.groups.values() {
        for &m in &g.members {
            groups_of
                .entry(src.users[m as usize].id.as_str())
                .or_default()
                .insert(g.name.clone());
        }
    }
    let mut target = TargetSnapshot::default();
    let mut links = LinkTable::default();
    for u in desired.users.values().filter(|u| u.enabled) {
        let key = format!("key-{}", u.source_id);
        target.accounts.push(TargetAccount {
            username: u.account.username.clone(),
            key: Some(key.clone()),
            display_name: u.account.display_name.clone(),
            email: u.account.email.clone(),
            active: true,
            groups: groups_of.remove(u.source_id.as_str()).unwrap_or_default(),
        });
        links.users.insert(
            u.source_id.clone(),
            UserLink {
                source_id: u.source_id.clone(),
                username: u.account.username.clone(),
                target_key: Some(key),
                pending_username: None,
                deactivated_at_ms: None,
                photo_tag: u.photo_tag.clone(),
            },
        );
    }
    for g in desired.groups.values() {
        target.groups.push(TargetGroup {
            name: g.name.clone(),
        });
        links.groups.insert(
            g.source_id.clone(),
            GroupLink {
                source_id: g.source_id.clone(),
                name: g.name.clone(),
                pending: false,
            },
        );
    }
    drop(desired);

    let desired = timed("no-change mapping+scope", || {
        desired_state(&src, &settings, &caps).expect("valid settings")
    });
    println!();
    let input = PlanInput {
        source: &src,
        target: &target,
        links: &links,
        settings: &settings,
        capabilities: &caps,
        now_ms,
    };
    let replan = timed("no-change plan", || plan_desired(&input, &desired));
    println!("\n    {}", summary(&replan));
    println!("peak RSS (VmHWM): {}", peak_rss());
}
