//! Step 6: the mass-removal guard. Account deactivations and deletions, group deletions and
//! membership removals each have their own limits (count, and percentage once a floor is
//! reached); deleting every managed account or group (two or more) is always held.

use super::build::Planner;
use super::{GuardLimit, HoldReason, OpKind, RemovalKind};

/// What the guard weighs: removals planned and the base of each percentage.
pub(super) struct GuardFigures {
    /// Linked accounts found in the target.
    pub managed_accounts: usize,
    /// Managed groups found in the target.
    pub managed_groups: usize,
    /// Existing managed groups this plan deletes.
    pub group_deletions: usize,
    /// Memberships usersync maintains now (managed users in managed and access groups).
    pub maintained_memberships: usize,
}

/// The guard's verdict.
pub(super) struct GuardVerdict {
    /// Deactivations and deletions the guard counted.
    pub removals: usize,
    /// Why the run is held, if it is.
    pub held: Option<HoldReason>,
}

/// The first limit `count` removals out of `base` cross, if any.
fn crossed(
    count: usize,
    base: usize,
    max: usize,
    max_percent: f64,
    floor: usize,
    everything_held: bool,
) -> Option<GuardLimit> {
    let pct = if base == 0 {
        100.0
    } else {
        count as f64 * 100.0 / base as f64
    };
    if count > max {
        Some(GuardLimit::Count { max })
    } else if count > 0 && count >= floor && pct > max_percent {
        Some(GuardLimit::Percent { max_percent, floor })
    } else if everything_held && count >= 2 && count >= base {
        // Removing everything is what an empty (but "complete") source answer or a wrong
        // scope looks like, and never routine: held however small the site.
        Some(GuardLimit::Everything)
    } else {
        None
    }
}

/// Weighs the plan's removals against the guard; holds the run, or warns on an override.
pub(super) fn check_guard(p: &mut Planner<'_>, f: &GuardFigures) -> GuardVerdict {
    let g = &p.input.settings.policy.guard;
    let removals = p
        .ops
        .iter()
        .filter(|o| {
            matches!(
                o.kind,
                OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. }
            )
        })
        .count();
    let memberships = p
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::RemoveMember { .. }))
        .count();
    let checks = [
        (
            RemovalKind::Accounts,
            removals,
            f.managed_accounts,
            crossed(
                removals,
                f.managed_accounts,
                g.max_count,
                g.max_percent,
                g.percent_floor,
                true,
            ),
        ),
        (
            RemovalKind::Groups,
            f.group_deletions,
            f.managed_groups,
            crossed(
                f.group_deletions,
                f.managed_groups,
                g.group_max_count,
                g.group_max_percent,
                g.group_percent_floor,
                true,
            ),
        ),
        (
            RemovalKind::Memberships,
            memberships,
            f.maintained_memberships,
            crossed(
                memberships,
                f.maintained_memberships,
                g.membership_max_count,
                g.membership_max_percent,
                g.membership_percent_floor,
                false,
            ),
        ),
    ];
    let mut held = None;
    for (what, count, base, limit) in checks {
        let Some(limit) = limit else { continue };
        let reason = HoldReason::Guard {
            what,
            limit,
            count,
            base,
        };
        if g.allow_mass_removal {
            p.warnings.push(format!(
                "mass-removal guard overridden (allow_mass_removal): {}",
                reason.figures()
            ));
        } else if held.is_none() {
            held = Some(reason);
        }
    }
    GuardVerdict { removals, held }
}
