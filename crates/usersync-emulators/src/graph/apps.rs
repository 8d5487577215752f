//! `/applications` (app registrations with their credentials).

use serde_json::{Map, Value, json};

use super::Ctx;
use super::odata::{
    Filter, GResult, GraphError, GraphResponse, Query, context, project, unknown_property,
};
use super::props::*;
use super::routes::*;

/// Application object JSON (`passwordCredentials`, `keyCredentials`).
/// <https://learn.microsoft.com/graph/api/resources/application>,
/// <https://learn.microsoft.com/graph/api/resources/passwordcredential>,
/// <https://learn.microsoft.com/graph/api/resources/keycredential>
pub fn application_json(a: &super::auth::AppState, domain: &str) -> Map<String, Value> {
    let pw: Vec<Value> = a
        .reg
        .secrets
        .iter()
        .map(|s| {
            json!({
                "customKeyIdentifier": null,
                "displayName": null,
                "endDateTime": iso(s.end),
                "hint": s.value.chars().take(3).collect::<String>(),
                "keyId": s.key_id,
                "secretText": null,
                "startDateTime": iso(s.end - 2 * 365 * 86400),
            })
        })
        .collect();
    let keys: Vec<Value> = a
        .certs
        .iter()
        .map(|c| {
            use base64::Engine;
            json!({
                "customKeyIdentifier": base64::engine::general_purpose::STANDARD.encode(hex_bytes(&c.sha1_hex)),
                "displayName": format!("CN={}", c.subject_cn),
                "endDateTime": iso(c.not_after),
                "key": null,
                "keyId": c.key_id,
                "startDateTime": iso(c.not_before),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(a.object_id));
    m.insert("appId".into(), json!(a.reg.client_id));
    m.insert("displayName".into(), json!(a.reg.display_name));
    m.insert("createdDateTime".into(), json!("2024-01-01T00:00:00Z"));
    m.insert("deletedDateTime".into(), Value::Null);
    m.insert("publisherDomain".into(), json!(domain));
    m.insert("signInAudience".into(), json!("AzureADMyOrg"));
    m.insert("passwordCredentials".into(), Value::Array(pw));
    m.insert("keyCredentials".into(), Value::Array(keys));
    m
}

pub(crate) fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect()
}

pub(crate) const APP_PROPS: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
    "signInAudience",
    "passwordCredentials",
    "keyCredentials",
];

/// `GET /applications[?$filter=appId eq '…']`, `GET /applications/{object-id}`.
/// <https://learn.microsoft.com/graph/api/application-list>
pub(crate) fn applications(ctx: &Ctx<'_>, q: &Query, one: Option<&str>) -> GResult<GraphResponse> {
    let apps = ctx
        .sh
        .apps
        .read()
        .map_err(|_| GraphError::new(500, "generalException", "apps lock poisoned"))?;
    let sel = q.select.as_deref().map(|s| {
        let mut v = s.to_vec();
        v.retain(|x| x != "id");
        v
    });
    let render = |a: &super::auth::AppState| -> GResult<Value> {
        let full = application_json(a, &ctx.sh.domain);
        Ok(Value::Object(match &sel {
            Some(s) => {
                project(&full, s, APP_PROPS).map_err(|n| unknown_property(&n, "application"))?
            }
            None => full,
        }))
    };
    if let Some(id) = one {
        let a = apps
            .iter()
            .find(|a| a.object_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| GraphError::not_found(id))?;
        let mut v = render(a)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#applications/$entity", ctx.graph_base)),
            );
        }
        return Ok(GraphResponse::json(200, v));
    }
    let filter = q
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, false))
        .transpose()?;
    let size = q.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    let mut out = Vec::new();
    for a in apps.iter() {
        let full = application_json(a, &ctx.sh.domain);
        if let Some(f) = &filter
            && !f.eval(&|p| {
                APP_PROPS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(p))
                    .map(|k| full.get(*k).cloned().unwrap_or(Value::Null))
            })?
        {
            continue;
        }
        out.push(render(a)?);
        if out.len() >= size {
            break;
        }
    }
    Ok(GraphResponse::json(
        200,
        json!({"@odata.context": context(&ctx.graph_base, "applications", q.select.as_deref()), "value": out}),
    ))
}
