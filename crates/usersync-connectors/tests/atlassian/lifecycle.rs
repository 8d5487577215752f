//! The same user/group lifecycle against every product, within each product's capabilities.

use crate::common::*;
use usersync_connectors::atlassian::Product;
use usersync_core::model::name_key;
use usersync_core::plan::Field;
use usersync_core::ports::ErrorKind;

async fn lifecycle(p: Product) {
    let emu = start(p).await;
    let h = emu.handle();
    let t = target(p, &emu);
    let caps = t.capabilities();
    assert!(caps.max_concurrency == 4, "default concurrency");

    // Read the seeded directory: no writes.
    emu.reset_stats();
    let snap = t.read().await.expect("read");
    assert_eq!(emu.stats().writes(), 0, "{p:?}: a read must not write");
    for g in h.groups() {
        assert!(
            snap.groups.iter().any(|x| x.name == g.name),
            "{p:?}: group {} read",
            g.name
        );
    }
    for u in h.users() {
        let a = snap
            .accounts
            .iter()
            .find(|a| a.username == u.name)
            .unwrap_or_else(|| panic!("{p:?}: {} read", u.name));
        assert!(a.key.is_some(), "{p:?}: {} has a key", u.name);
        // Display name, e-mail and state are read as stored: no phantom changes for the planner.
        assert_eq!(
            (a.display_name.as_str(), a.email.as_str(), a.active),
            (u.display_name.as_str(), u.email.as_str(), u.active),
            "{p:?}"
        );
        let want: std::collections::BTreeSet<String> = h.groups_of(&u.name).into_iter().collect();
        assert_eq!(a.groups, want, "{p:?}: direct groups of {}", u.name);
    }
    let admin_before = h.user("admin");

    // Create a group and a user; names are case-insensitive.
    t.create_group("Engineering").await.expect("create group");
    assert!(h.group("engineering").is_some());
    let created = t
        .create_user(&spec("jdoe", "Jane Doe"))
        .await
        .expect("create user");
    let u = h.user("jdoe").expect("user exists");
    assert_eq!(u.display_name, "Jane Doe");
    assert_eq!(u.email, "jdoe@example.com");
    assert!(u.active);
    assert!(created.key.is_some(), "{p:?}: key returned on create");
    t.add_members("engineering", &["JDOE".to_string()])
        .await
        .expect("add member");
    assert_eq!(h.members("Engineering"), vec!["jdoe".to_string()]);
    // Adding again is not an error (already the wanted state).
    t.add_members("Engineering", &["jdoe".to_string()])
        .await
        .expect("add member again");

    let snap = t.read().await.expect("read");
    let a = snap
        .accounts
        .iter()
        .find(|a| name_key(&a.username) == "jdoe")
        .expect("jdoe read");
    assert!(
        a.groups.iter().any(|g| name_key(g) == "engineering"),
        "{p:?}: {:?}",
        a.groups
    );
    let key = a.key.clone();
    if let Some(k) = &created.key {
        assert_eq!(Some(k), key.as_ref(), "{p:?}: created key = read key");
    }

    // Update display name and e-mail (case-insensitive username).
    t.update_user(
        "JDoe",
        &[
            change(Field::DisplayName, "Jane Doe", "Jane Q. Doe"),
            change(Field::Email, "jdoe@example.com", "jane@example.com"),
        ],
    )
    .await
    .expect("update");
    let u = h.user("jdoe").unwrap();
    assert_eq!(
        (u.display_name.as_str(), u.email.as_str()),
        ("Jane Q. Doe", "jane@example.com")
    );
    let snap = t.read().await.expect("read");
    let a = snap
        .accounts
        .iter()
        .find(|a| name_key(&a.username) == "jdoe")
        .expect("jdoe read");
    assert_eq!(
        (a.display_name.as_str(), a.email.as_str()),
        ("Jane Q. Doe", "jane@example.com"),
        "{p:?}"
    );

    // Rename where supported.
    let mut name = "jdoe".to_string();
    if caps.rename {
        t.rename_user("jdoe", "jane.doe").await.expect("rename");
        assert!(h.user("jdoe").is_none());
        assert!(h.user("jane.doe").is_some());
        name = "jane.doe".into();
        let snap = t.read().await.unwrap();
        let a = snap
            .accounts
            .iter()
            .find(|a| a.username == "jane.doe")
            .expect("renamed read");
        assert_eq!(a.key, key, "{p:?}: key survives a rename");
        assert!(a.groups.iter().any(|g| name_key(g) == "engineering"));
    } else {
        let e = t.rename_user("jdoe", "jane.doe").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }

    // Deactivate / reactivate where supported.
    if caps.deactivate {
        t.set_active(&name.to_uppercase(), false)
            .await
            .expect("deactivate");
        assert!(!h.user(&name).unwrap().active);
        let snap = t.read().await.unwrap();
        assert!(
            !snap
                .accounts
                .iter()
                .find(|a| a.username == name)
                .unwrap()
                .active,
            "{p:?}: read inactive"
        );
        t.set_active(&name, true).await.expect("reactivate");
        assert!(h.user(&name).unwrap().active);
        // Crowd's full PUT must not lose fields.
        let u = h.user(&name).unwrap();
        assert_eq!(
            (u.display_name.as_str(), u.email.as_str()),
            ("Jane Q. Doe", "jane@example.com")
        );
    } else {
        let e = t.set_active(&name, false).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }

    // Remove membership, delete user and group.
    t.remove_member("ENGINEERING", &name)
        .await
        .expect("remove member");
    assert!(h.members("Engineering").is_empty());
    t.delete_user(&name).await.expect("delete user");
    assert!(h.user(&name).is_none());
    t.delete_group("engineering").await.expect("delete group");
    assert!(h.group("Engineering").is_none());

    // The unmanaged admin account was never touched.
    assert_eq!(
        h.user("admin"),
        admin_before,
        "{p:?}: unmanaged account untouched"
    );
}

#[tokio::test]
async fn jira_lifecycle() {
    lifecycle(Product::Jira).await;
}

#[tokio::test]
async fn confluence_lifecycle() {
    lifecycle(Product::Confluence).await;
}

#[tokio::test]
async fn bitbucket_lifecycle() {
    lifecycle(Product::Bitbucket).await;
}

#[tokio::test]
async fn crowd_lifecycle() {
    lifecycle(Product::Crowd).await;
}

/// Missing entities give NotFound with the product's message.
#[tokio::test]
async fn missing_user_is_not_found_everywhere() {
    for p in ALL {
        let emu = start(p).await;
        let t = target(p, &emu);
        let e = t.delete_user("ghost").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{p:?}: {}", e.message);
        assert_eq!(e.status, Some(404), "{p:?}");
    }
}
