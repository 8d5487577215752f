//! Shared helpers: start an emulator, build a target against it with fast retries.

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use usersync_connectors::atlassian::{AtlassianAuth, AtlassianTargetConfig, Product, build_target};
use usersync_connectors::http::RetryPolicy;
use usersync_core::plan::{AccountSpec, Field, FieldChange};
use usersync_core::ports::TargetDirectory;
use usersync_emulators::atlassian::{AtlassianConfig, AtlassianEmulator, Product as EmuProduct};

pub const ALL: [Product; 4] = [
    Product::Jira,
    Product::Confluence,
    Product::Bitbucket,
    Product::Crowd,
];

pub fn emu_product(p: Product) -> EmuProduct {
    match p {
        Product::Jira => EmuProduct::Jira,
        Product::Confluence => EmuProduct::Confluence,
        Product::Bitbucket => EmuProduct::Bitbucket,
        Product::Crowd => EmuProduct::Crowd,
    }
}

/// Small delays so 429/503 tests run fast.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(2),
        max_total_wait: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
}

pub async fn start(p: Product) -> AtlassianEmulator {
    start_with(AtlassianConfig::new(emu_product(p))).await
}

pub async fn start_with(cfg: AtlassianConfig) -> AtlassianEmulator {
    AtlassianEmulator::start(cfg)
        .await
        .expect("emulator starts")
}

/// Admin credentials the emulator accepts by default (Crowd: the application).
pub fn admin_auth(p: Product) -> AtlassianAuth {
    match p {
        Product::Crowd => AtlassianAuth::CrowdApp {
            name: "usersync".into(),
            password: SecretString::from("usersync"),
        },
        _ => AtlassianAuth::Basic {
            username: "admin".into(),
            password: SecretString::from("admin"),
        },
    }
}

pub fn config(p: Product, emu: &AtlassianEmulator) -> AtlassianTargetConfig {
    let mut cfg = AtlassianTargetConfig::new(p, emu.base_url(), admin_auth(p));
    cfg.retry = quick_retry();
    cfg.timeout = Duration::from_secs(10);
    cfg.confluence_delete_wait = Duration::from_secs(5);
    cfg
}

pub fn target(p: Product, emu: &AtlassianEmulator) -> Arc<dyn TargetDirectory> {
    build_target(&config(p, emu)).expect("target builds")
}

pub fn spec(username: &str, display: &str) -> AccountSpec {
    AccountSpec {
        username: username.into(),
        display_name: display.into(),
        email: format!("{username}@example.com"),
    }
}

pub fn change(field: Field, before: &str, after: &str) -> FieldChange {
    FieldChange {
        field,
        before: before.into(),
        after: after.into(),
    }
}

/// A small valid PNG.
pub fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 30) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}
