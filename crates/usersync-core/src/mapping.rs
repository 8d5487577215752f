//! Source user → target account mapping: which attribute becomes the username, the transforms
//! applied to it, and the validation that rejects names Atlassian products would refuse. A user
//! whose name cannot be derived is skipped with a reason, never given a guessed name.

use crate::config::{MappingSettings, UsernameSource, UsernameTransform};
use crate::model::SourceUser;
use crate::plan::AccountSpec;
use crate::ports::TargetCapabilities;

/// Longest username Atlassian products accept (Crowd's column width).
pub const MAX_USERNAME_LEN: usize = 255;

/// Characters Atlassian products reject in usernames (besides whitespace and control chars).
const FORBIDDEN: &[char] = &['\\', ',', '+', '<', '>', '\'', '"'];

/// The config name of a username source, for messages.
fn source_name(src: UsernameSource) -> &'static str {
    match src {
        UsernameSource::UserPrincipalName => "user_principal_name",
        UsernameSource::Mail => "mail",
        UsernameSource::SamAccountName => "sam_account_name",
        UsernameSource::UpnLocalPart => "upn_local_part",
        UsernameSource::EmployeeId => "employee_id",
    }
}

/// Reads one username source attribute; `None` when absent or blank.
pub fn attribute(user: &SourceUser, src: UsernameSource) -> Option<String> {
    let value = match src {
        UsernameSource::UserPrincipalName => Some(user.upn.as_str()),
        UsernameSource::Mail => user.mail.as_deref(),
        UsernameSource::SamAccountName => user.sam_account_name.as_deref(),
        UsernameSource::UpnLocalPart => user.upn.split('@').next(),
        UsernameSource::EmployeeId => user.employee_id.as_deref(),
    };
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Turns a guest UPN (`first.last_example.com#EXT#@tenant.onmicrosoft.com`) into the original
/// address (`first.last@example.com`). `None` when the value is not a guest UPN.
pub fn guest_original_address(upn: &str) -> Option<String> {
    // ASCII upper-casing keeps byte offsets, so the index is valid in `upn`.
    let idx = upn.to_ascii_uppercase().find("#EXT#")?;
    let local = &upn[..idx];
    let underscore = local.rfind('_')?;
    let (name, domain) = (&local[..underscore], &local[underscore + 1..]);
    if name.is_empty() || domain.is_empty() {
        return None;
    }
    Some(format!("{name}@{domain}"))
}

/// Applies one transform.
pub fn apply_transform(name: &str, transform: UsernameTransform) -> String {
    match transform {
        UsernameTransform::Lowercase => name.to_lowercase(),
        UsernameTransform::StripDomain => name.split('@').next().unwrap_or_default().to_string(),
        UsernameTransform::GuestOriginalAddress => {
            guest_original_address(name).unwrap_or_else(|| name.to_string())
        }
    }
}

/// Checks a username against what Atlassian products accept. The error says what is wrong.
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the mapped username is empty".into());
    }
    let len = name.chars().count();
    if len > MAX_USERNAME_LEN {
        return Err(format!(
            "the mapped username is {len} characters long; the maximum is {MAX_USERNAME_LEN}"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the mapped username {name:?} contains a control character ({c:?})"
        ));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!("the mapped username {name:?} contains whitespace"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(format!(
            "the mapped username {name:?} contains `{c}`, which Atlassian products reject in usernames"
        ));
    }
    Ok(())
}

/// Maps a source user to the account usersync wants in the target. `Err` carries the reason
/// the user is skipped.
pub fn map_user(
    user: &SourceUser,
    settings: &MappingSettings,
    caps: &TargetCapabilities,
) -> Result<AccountSpec, String> {
    let raw = attribute(user, settings.username_source)
        .or_else(|| {
            settings
                .username_fallback
                .and_then(|fb| attribute(user, fb))
        })
        .ok_or_else(|| match settings.username_fallback {
            Some(fb) => format!(
                "neither {} nor the fallback {} has a value, so no username can be derived",
                source_name(settings.username_source),
                source_name(fb)
            ),
            None => format!(
                "{} has no value and no username_fallback is configured",
                source_name(settings.username_source)
            ),
        })?;
    let username = settings
        .username_transforms
        .iter()
        .fold(raw, |name, t| apply_transform(&name, *t));
    validate_username(&username)?;
    if caps.lowercase_usernames_only && username != username.to_lowercase() {
        return Err(format!(
            "{} only accepts lower-case usernames and {username:?} has upper-case letters; add \
             \"lowercase\" to mapping.username_transforms",
            caps.product
        ));
    }
    Ok(AccountSpec {
        display_name: display_name(user, &username),
        email: email(user),
        username,
    })
}

/// Says why a linked account's name `current` differs from the name the mapping gives now:
/// the mapping configuration changed (some source attribute still yields `current`), or the
/// source attribute the mapping reads changed. Used as the rename reason.
pub fn rename_cause(user: &SourceUser, settings: &MappingSettings, current: &str) -> String {
    const ALL: [UsernameSource; 5] = [
        UsernameSource::UserPrincipalName,
        UsernameSource::Mail,
        UsernameSource::SamAccountName,
        UsernameSource::UpnLocalPart,
        UsernameSource::EmployeeId,
    ];
    const TRANSFORMS: [UsernameTransform; 3] = [
        UsernameTransform::GuestOriginalAddress,
        UsernameTransform::StripDomain,
        UsernameTransform::Lowercase,
    ];
    let wanted = current.to_lowercase();
    // The old name is still derivable from today's attributes (raw, with today's transforms,
    // or with any single transform): the attribute did not change, the mapping did.
    let still_derivable = ALL.iter().filter_map(|s| attribute(user, *s)).any(|v| {
        let configured = settings
            .username_transforms
            .iter()
            .fold(v.clone(), |n, t| apply_transform(&n, *t));
        std::iter::once(v.clone())
            .chain(std::iter::once(configured))
            .chain(TRANSFORMS.iter().map(|t| apply_transform(&v, *t)))
            .any(|c| c.to_lowercase() == wanted)
    });
    if still_derivable {
        return format!(
            "the username mapping changed (username_source = {}): the source attributes are \
             unchanged",
            source_name(settings.username_source)
        );
    }
    let used = if attribute(user, settings.username_source).is_some() {
        Some(settings.username_source)
    } else {
        settings.username_fallback
    };
    match used.and_then(|s| attribute(user, s).map(|v| (s, v))) {
        Some((s, v)) => format!("the source {} changed (now {v})", source_name(s)),
        None => "the source username changed".to_string(),
    }
}

/// Display name: `displayName`, else given name + surname, else the username.
fn display_name(user: &SourceUser, username: &str) -> String {
    if let Some(d) = user
        .display_name
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        return d.to_string();
    }
    let parts: Vec<&str> = [user.given_name.as_deref(), user.surname.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        username.to_string()
    } else {
        parts.join(" ")
    }
}

/// E-mail: `mail`, else the guest's original address, else the UPN.
fn email(user: &SourceUser) -> String {
    if let Some(m) = user
        .mail
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        return m.to_string();
    }
    guest_original_address(&user.upn).unwrap_or_else(|| user.upn.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::full_capabilities;

    fn user(upn: &str, mail: Option<&str>) -> SourceUser {
        SourceUser {
            id: "id".into(),
            upn: upn.into(),
            mail: mail.map(str::to_string),
            given_name: Some("Ann".into()),
            surname: Some("Lee".into()),
            display_name: None,
            enabled: true,
            sam_account_name: None,
            employee_id: None,
            photo: None,
        }
    }

    #[test]
    fn guest_upn_becomes_original_address() {
        assert_eq!(
            guest_original_address("first.last_example.com#EXT#@tenant.onmicrosoft.com").as_deref(),
            Some("first.last@example.com")
        );
        assert_eq!(guest_original_address("a_b@example.com"), None);
    }

    #[test]
    fn source_fallback_and_transforms() {
        let caps = full_capabilities();
        let settings = MappingSettings {
            username_source: UsernameSource::SamAccountName,
            username_fallback: Some(UsernameSource::Mail),
            username_transforms: vec![UsernameTransform::StripDomain, UsernameTransform::Lowercase],
        };
        let spec = map_user(
            &user("x@t.com", Some("Ann.Lee@Example.com")),
            &settings,
            &caps,
        )
        .expect("maps");
        assert_eq!(spec.username, "ann.lee");
        assert_eq!(spec.display_name, "Ann Lee");
        assert_eq!(spec.email, "Ann.Lee@Example.com");
        let guest = user("ann_partner.org#EXT#@t.onmicrosoft.com", None);
        let spec = map_user(&guest, &MappingSettings::default(), &caps).expect("maps");
        assert_eq!(
            (spec.username.as_str(), spec.email.as_str()),
            ("ann@partner.org", "ann@partner.org")
        );
    }

    #[test]
    fn invalid_names_are_rejected() {
        for bad in ["", "a b", "a\u{7}b", "a<b", "a\"b", "a+b", "a\\b"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_username(&"x".repeat(256)).is_err());
        assert!(validate_username(&"x".repeat(255)).is_ok());
    }
}
