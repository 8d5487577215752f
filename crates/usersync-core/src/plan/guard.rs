//! Step 6: the mass-removal guard.

use super::OpKind;
use super::build::Planner;

/// The guard's verdict.
pub(super) struct GuardVerdict {
    /// Deactivations and deletions the guard counted.
    pub removals: usize,
    /// Why the run is held, if it is.
    pub held: Option<String>,
}

/// Counts the plan's removals against the guard; holds the run or warns on an override.
pub(super) fn check_guard(p: &mut Planner<'_>, managed_accounts: usize) -> GuardVerdict {
    let policy = &p.input.settings.policy;
    let removals = p
        .ops
        .iter()
        .filter(|(k, _)| matches!(k, OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. }))
        .count();
    let g = &policy.guard;
    let pct = if managed_accounts == 0 {
        100.0
    } else {
        removals as f64 * 100.0 / managed_accounts as f64
    };
    // Removing every managed account is held however small the tenant: it is what an empty
    // (but "complete") source answer or a wrong scope looks like, and never routine.
    let wipes_all = removals >= 2 && removals >= managed_accounts;
    let over = removals > g.max_count
        || (removals >= g.percent_floor && removals > 0 && pct > g.max_percent)
        || wipes_all;
    let mut held = None;
    if over {
        let what = format!(
            "{removals} accounts would be deactivated or deleted ({pct:.1}% of {managed_accounts} managed \
             accounts; limits: {} accounts, or {}% once at least {} are affected{})",
            g.max_count,
            g.max_percent,
            g.percent_floor,
            if wipes_all {
                ", and never every managed account at once"
            } else {
                ""
            }
        );
        if g.allow_mass_removal {
            p.warnings.push(format!(
                "mass-removal guard overridden (allow_mass_removal): {what}"
            ));
        } else {
            held = Some(format!(
                "held by the mass-removal guard: {what}. Review the plan; if it is intended, run again \
                 with --allow-mass-removal"
            ));
        }
    }

    GuardVerdict { removals, held }
}
