//! Profile photos of users (metadata and `$value`).

use serde_json::{Map, Value, json};

use super::Ctx;
use super::generator::{PHOTO_SIZE, photos};
use super::model::{Directory, User};
use super::odata::{Body, GResult, GraphError, GraphResponse};

pub(crate) fn photo_etag(u: &User) -> String {
    let h =
        (u.id.as_u128() as u64) ^ ((u.photo_version as u64) << 32) ^ u.photo.unwrap_or(0) as u64;
    format!("\"{:08X}\"", (h ^ (h >> 32)) as u32)
}

pub(crate) fn photo_meta(ctx: &Ctx<'_>, u: &User, entity: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if entity {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$metadata#users('{}')/photo/$entity",
                ctx.graph_base, u.id
            )),
        );
    }
    m.insert("@odata.mediaContentType".into(), json!("image/jpeg"));
    m.insert("@odata.mediaEtag".into(), json!(photo_etag(u)));
    m.insert("id".into(), json!(format!("{PHOTO_SIZE}x{PHOTO_SIZE}")));
    m.insert("width".into(), json!(PHOTO_SIZE));
    m.insert("height".into(), json!(PHOTO_SIZE));
    m
}

/// `/users/{id}/photo[/$value]`, `/users/{id}/photos/{size}[/$value]`.
/// <https://learn.microsoft.com/graph/api/profilephoto-get> ("If no photo exists, the
/// operation returns 404 Not Found").
pub(crate) fn photo(
    ctx: &Ctx<'_>,
    dir: &Directory,
    user: &str,
    size: Option<&str>,
    value: bool,
) -> GResult<GraphResponse> {
    let i = dir
        .active_user(user)
        .ok_or_else(|| GraphError::not_found(user))?;
    let u = &dir.users[i as usize];
    let no_photo = || {
        GraphError::new(
            404,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        )
    };
    let Some(idx) = u.photo else {
        return Err(no_photo());
    };
    if let Some(sz) = size
        && sz != format!("{PHOTO_SIZE}x{PHOTO_SIZE}")
    {
        return Err(no_photo());
    }
    if value {
        let bytes = photos()[idx as usize % photos().len()].clone();
        Ok(GraphResponse {
            status: 200,
            headers: vec![("ETag".into(), photo_etag(u))],
            body: Body::Bytes(bytes, "image/jpeg"),
        })
    } else {
        Ok(GraphResponse::json(
            200,
            Value::Object(photo_meta(ctx, u, true)),
        ))
    }
}
