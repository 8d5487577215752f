//! Step 1: resolve user links to target accounts (by key, then pending name, then known name).

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
    for (sid, link) in &input.links.users {
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
