//! Step 1: resolve user links to target accounts (by key, then pending name, then known name;
//! key matches first).

use super::build::Planner;
use std::collections::HashMap;

/// Which target account each linked source user owns.
pub(super) struct ResolvedLinks<'a> {
    /// Source object ID → index into the target accounts.
    pub account_of: HashMap<&'a str, usize>,
    /// Number of linked accounts found in the target (the guard's base).
    pub managed_accounts: usize,
}

/// Resolves every user link; two links on one account keep the first (GUID order) and warn.
pub(super) fn resolve_links<'a>(p: &mut Planner<'a>) -> ResolvedLinks<'a> {
    let input = p.input;
    let accounts = input.target.accounts.as_slice();
    let mut resolved: HashMap<&str, usize> = HashMap::with_capacity(input.links.users.len());
    // Links that match by key claim their accounts first, so a link that only matches by name
    // (no key recorded) never takes an account another link holds by key.
    let by_key = |link: &crate::link::UserLink| {
        link.target_key
            .as_deref()
            .is_some_and(|k| p.by_key.contains_key(k))
    };
    let (keyed, by_name): (Vec<_>, Vec<_>) = input.links.users.iter().partition(|(_, l)| by_key(l));
    for (sid, link) in keyed.into_iter().chain(by_name) {
        if let Some(i) = p.find(link) {
            if let Some(other) = p.owner.get(&i) {
                p.warnings.push(format!(
                    "links of source users {other} and {sid} both point at account {}; {sid} is ignored",
                    accounts[i].username
                ));
                continue;
            }
            p.owner.insert(i, sid.as_str());
            resolved.insert(sid.as_str(), i);
        }
    }
    let managed_accounts = resolved.len();

    ResolvedLinks {
        account_of: resolved,
        managed_accounts,
    }
}
