//! Step 3: users in scope — adopt, create, confirm, rename, reactivate, deactivate (disabled),
//! update and avatars.

use super::build::{MUser, Mode, Planner};
use super::links::ResolvedLinks;
use super::{Conflict, ConflictKind, Field, FieldChange, OpKind, SkippedUser};
use crate::config::AdoptMode;
use crate::mapping::rename_cause;
use crate::model::name_key;
use std::collections::HashMap;

/// Plans the users of the desired state; returns them for the membership step.
pub(super) fn plan_users<'a>(p: &mut Planner<'a>, links: &ResolvedLinks<'a>) -> Vec<MUser<'a>> {
    let input = p.input;
    let desired = p.desired;
    let caps = input.capabilities;
    let policy = &input.settings.policy;
    let complete = input.source.complete;
    let accounts = input.target.accounts.as_slice();
    let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
    if policy.adopt_existing == AdoptMode::ByUsernameOrEmail {
        for (i, a) in accounts.iter().enumerate() {
            if !p.owner.contains_key(&i) && !a.email.trim().is_empty() {
                by_email
                    .entry(a.email.trim().to_lowercase())
                    .or_default()
                    .push(i);
            }
        }
    }
    let sync_avatars = policy.sync_avatars && caps.avatars;
    // Source users by ID, built on the first rename (renames are rare; the reason needs them).
    let mut source_users: Option<HashMap<&str, &crate::model::SourceUser>> = None;
    let mut musers: Vec<MUser<'_>> =
        Vec::with_capacity(desired.users.len() + input.links.users.len());
    for (sid, d) in &desired.users {
        let link = input.links.users.get(sid);
        let mut acct = links.account_of.get(sid.as_str()).copied();
        let mut adopted = false;
        if acct.is_none() {
            if !d.enabled {
                p.skipped.push(SkippedUser {
                    source_id: sid.clone(),
                    upn: d.upn.clone(),
                    username: Some(d.account.username.clone()),
                    reason:
                        "disabled in the source and has no account in the target; none is created"
                            .into(),
                });
                continue;
            }
            if let Some(&i) = p.by_name.get(&name_key(&d.account.username)) {
                if let Some(other) = p.owner.get(&i) {
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::ManagedByOther,
                        name: accounts[i].username.clone(),
                        source_ids: vec![sid.clone()],
                        detail: format!(
                            "the username is held by the account usersync manages for source user {other}; \
                             this user is synced once that account is renamed or removed"
                        ),
                    });
                    continue;
                }
                if policy.adopt_existing == AdoptMode::Never {
                    p.conflict_accounts.insert(i);
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::UnmanagedAccount,
                        name: accounts[i].username.clone(),
                        source_ids: vec![sid.clone()],
                        detail: "an account with this username exists but was not created by usersync; set \
                                 policy.adopt_existing = \"by_username\" to adopt it, or rename/remove it"
                            .into(),
                    });
                    continue;
                }
                p.push(
                    OpKind::AdoptUser {
                        source_id: sid.clone(),
                        username: accounts[i].username.clone(),
                        target_key: accounts[i].key.clone(),
                    },
                    "an existing account has the same username and adoption is on",
                );
                acct = Some(i);
            } else if policy.adopt_existing == AdoptMode::ByUsernameOrEmail {
                let email = d.account.email.trim().to_lowercase();
                let candidates: Vec<usize> = by_email
                    .get(&email)
                    .map(|v| {
                        v.iter()
                            .copied()
                            .filter(|i| !p.owner.contains_key(i))
                            .collect()
                    })
                    .unwrap_or_default();
                match candidates.as_slice() {
                    [i] => {
                        let i = *i;
                        p.push(
                            OpKind::AdoptUser { source_id: sid.clone(), username: accounts[i].username.clone(), target_key: accounts[i].key.clone() },
                            format!("an existing account has the same e-mail ({}) and adoption by e-mail is on", d.account.email),
                        );
                        acct = Some(i);
                    }
                    [] => {}
                    many => p.warnings.push(format!(
                        "{} accounts have the e-mail {}, so {} is not adopted by e-mail and a new account is created",
                        many.len(),
                        d.account.email,
                        d.upn
                    )),
                }
            }
            if let Some(i) = acct {
                p.owner.insert(i, sid.as_str());
                adopted = true;
            } else {
                let why = match link {
                    Some(l) if l.pending_username.is_some() => {
                        "re-issues a create that an earlier run did not confirm (no account exists under the pending name)"
                    }
                    Some(_) => {
                        "the managed account is missing from the target (deleted outside usersync?); it is created again"
                    }
                    None => "new user in the source scope",
                };
                p.push(
                    OpKind::CreateUser {
                        source_id: sid.clone(),
                        account: d.account.clone(),
                    },
                    why,
                );
                if let Some(tag) = d.photo_tag.as_ref().filter(|_| sync_avatars) {
                    p.push(
                        OpKind::SetAvatar {
                            source_id: sid.clone(),
                            username: d.account.username.clone(),
                            photo_tag: tag.clone(),
                        },
                        "the new account gets the source profile picture",
                    );
                }
                musers.push(MUser {
                    source_id: sid,
                    name: d.account.username.clone(),
                    account: None,
                    mode: Mode::Active,
                    protected: p.is_protected(&d.account.username),
                    why: String::new(),
                    synced: true,
                });
                continue;
            }
        }
        let i = acct.expect("account resolved above");
        let a = &accounts[i];
        if !adopted && link.is_some_and(|l| l.pending_username.is_some()) {
            p.push(
                OpKind::AdoptUser { source_id: sid.clone(), username: a.username.clone(), target_key: a.key.clone() },
                format!("confirms a create or rename an earlier run did not record: the account exists as {}", a.username),
            );
        }
        let want = &d.account.username;
        // Protected under its current or its new name.
        let protected = p.is_protected(&a.username) || p.is_protected(want);
        let mut name = a.username.clone();
        if name_key(want) != name_key(&name) {
            if protected {
                p.warnings
                    .push(format!("protected account {name} is not renamed to {want}"));
            } else if !caps.rename {
                p.warnings.push(format!(
                    "{} cannot rename accounts: {name} keeps its login name although the source now maps \
                     to {want}; display name and e-mail still follow the source",
                    caps.product
                ));
            } else if let Some(&j) = p.by_name.get(&name_key(want)).filter(|&&j| j != i) {
                p.conflicts.push(Conflict {
                    kind: ConflictKind::RenameTargetTaken,
                    name: want.clone(),
                    source_ids: vec![sid.clone()],
                    detail: format!(
                        "{name} should be renamed to {want}, but the account {} already exists; the rename \
                         waits until it is renamed or removed",
                        accounts[j].username
                    ),
                });
            } else {
                p.push(
                    OpKind::RenameUser {
                        source_id: sid.clone(),
                        from: name.clone(),
                        to: want.clone(),
                    },
                    match source_users
                        .get_or_insert_with(|| {
                            input
                                .source
                                .users
                                .iter()
                                .map(|u| (u.id.as_str(), u))
                                .collect()
                        })
                        .get(sid.as_str())
                    {
                        Some(u) => rename_cause(u, &input.settings.mapping, &name),
                        None => format!("the source username changed (UPN now {})", d.upn),
                    },
                );
                name = want.clone();
            }
        }
        let active = p.is_active(a, link);
        let mut mode = Mode::Active;
        if d.enabled {
            if !active {
                p.push(
                    OpKind::ReactivateUser {
                        source_id: sid.clone(),
                        username: name.clone(),
                        target_key: a.key.clone(),
                    },
                    "returning user: enabled and in scope in the source again",
                );
            }
        } else {
            mode = if caps.deactivate {
                Mode::Disabled
            } else {
                Mode::Fallback
            };
            if active {
                if protected {
                    p.warnings.push(format!(
                        "protected account {name} is disabled in the source but is not deactivated"
                    ));
                    mode = Mode::Frozen;
                } else if !complete {
                    p.withheld += 1;
                    mode = Mode::Frozen;
                } else {
                    let mut why = "disabled in the source (accountEnabled = false)".to_string();
                    if !caps.deactivate {
                        why.push_str(&p.fallback_note());
                    }
                    p.push(
                        OpKind::DeactivateUser {
                            source_id: sid.clone(),
                            username: name.clone(),
                            target_key: a.key.clone(),
                        },
                        why,
                    );
                }
            } else if !complete {
                mode = Mode::Frozen;
            }
        }
        let mut changes = Vec::new();
        if a.display_name != d.account.display_name {
            changes.push(FieldChange {
                field: Field::DisplayName,
                before: a.display_name.clone(),
                after: d.account.display_name.clone(),
            });
        }
        if !a.email.trim().eq_ignore_ascii_case(d.account.email.trim()) {
            changes.push(FieldChange {
                field: Field::Email,
                before: a.email.clone(),
                after: d.account.email.clone(),
            });
        }
        if !changes.is_empty() {
            let fields: Vec<&str> = changes
                .iter()
                .map(|c| {
                    if c.field == Field::DisplayName {
                        "display name"
                    } else {
                        "e-mail"
                    }
                })
                .collect();
            p.push(
                OpKind::UpdateUser {
                    source_id: sid.clone(),
                    username: name.clone(),
                    changes,
                    target_key: a.key.clone(),
                },
                format!("the source {} changed", fields.join(" and ")),
            );
        }
        let uploaded = link.and_then(|l| l.photo_tag.as_ref());
        if let Some(tag) = d
            .photo_tag
            .as_ref()
            .filter(|t| sync_avatars && d.enabled && uploaded != Some(*t))
        {
            p.push(
                OpKind::SetAvatar {
                    source_id: sid.clone(),
                    username: name.clone(),
                    photo_tag: tag.clone(),
                },
                "the source profile picture changed",
            );
        }
        musers.push(MUser {
            source_id: sid,
            name,
            account: Some(i),
            mode,
            protected,
            why: String::new(),
            synced: true,
        });
    }

    musers
}
