//! Profile photos of users (metadata and `$value`).

use serde_json::{Map, Value, json};

use super::Ctx;
use super::generator::{PHOTO_SIZE, photo_at};
use super::model::{Directory, User};
use super::odata::{Body, GResult, GraphError, GraphResponse};

pub(crate) fn photo_etag(u: &User) -> String {
    let h =
        (u.id.as_u128() as u64) ^ ((u.photo_version as u64) << 32) ^ u.photo.unwrap_or(0) as u64;
    format!("\"{:08X}\"", (h ^ (h >> 32)) as u32)
}

/// The sizes Microsoft 365 stores for a photo: "48x48, 64x64, 96x96, 120x120, 240x240,
/// 360x360, 432x432, 504x504, and 648x648"; sizes larger than the uploaded picture are not
/// available. <https://learn.microsoft.com/graph/api/profilephoto-get>
pub(crate) const HD_SIZES: &[u32] = &[48, 64, 96, 120, 240, 360, 432, 504, 648];

/// Sizes available for the emulator's uploads (all [`PHOTO_SIZE`] pixels square).
pub(crate) fn available_sizes() -> impl Iterator<Item = u32> {
    HD_SIZES.iter().copied().filter(|&s| s <= PHOTO_SIZE)
}

/// Parses a `{w}x{h}` size segment (case-insensitive `x`) among the available sizes.
fn parse_size(s: &str) -> Option<u32> {
    let (w, h) = s
        .to_ascii_lowercase()
        .split_once('x')
        .map(|(a, b)| (a.to_string(), b.to_string()))?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    (w == h && available_sizes().any(|x| x == w)).then_some(w)
}

/// Metadata of a user without a photo: the documented 200 placeholder (a 1×1 GIF with an
/// empty `@odata.mediaEtag`), not a 404. <https://learn.microsoft.com/graph/api/profilephoto-get>
/// (response "when a photo hasn't already been uploaded for the user").
pub(crate) fn no_photo_meta(ctx: &Ctx<'_>, u: &User) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#users('{}')/photo/$entity",
            ctx.graph_base, u.id
        )),
    );
    m.insert("@odata.mediaContentType".into(), json!("image/gif"));
    m.insert("@odata.mediaEtag".into(), json!(""));
    m.insert("id".into(), json!("1X1"));
    m.insert("width".into(), json!(1));
    m.insert("height".into(), json!(1));
    m
}

pub(crate) fn photo_meta_at(
    ctx: &Ctx<'_>,
    u: &User,
    entity: bool,
    size: u32,
) -> Map<String, Value> {
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
    m.insert("id".into(), json!(format!("{size}x{size}")));
    m.insert("width".into(), json!(size));
    m.insert("height".into(), json!(size));
    m
}

/// `/users/{id}/photo[/$value]`, `/users/{id}/photos/{size}[/$value]`.
/// <https://learn.microsoft.com/graph/api/profilephoto-get>: `$value` of a missing photo or
/// size is 404; `/photo` metadata of a user without a photo is the 1×1 placeholder.
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
        if size.is_none() && !value {
            return Ok(GraphResponse::json(
                200,
                Value::Object(no_photo_meta(ctx, u)),
            ));
        }
        return Err(no_photo());
    };
    let px = match size {
        None => PHOTO_SIZE,
        Some(sz) => parse_size(sz).ok_or_else(no_photo)?,
    };
    if value {
        let bytes = photo_at(idx as usize, px);
        Ok(GraphResponse {
            status: 200,
            headers: vec![("ETag".into(), photo_etag(u))],
            body: Body::Bytes(bytes, "image/jpeg"),
        })
    } else {
        Ok(GraphResponse::json(
            200,
            Value::Object(photo_meta_at(ctx, u, true, px)),
        ))
    }
}
