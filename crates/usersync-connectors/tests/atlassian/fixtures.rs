//! Error bodies in the documented shapes → the product's message and the right ErrorKind.

use usersync_connectors::atlassian::{Product, error_for, parse_error_body};
use usersync_core::ports::ErrorKind;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/atlassian/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn jira_error_collection() {
    let body = fixture("jira-error-400-duplicate.json");
    let e = error_for(Product::Jira, 400, &body, "create Jira user jdoe");
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message
            .contains("username: A user with that username already exists."),
        "{}",
        e.message
    );
    assert_eq!(e.status, Some(400));
    let e = error_for(
        Product::Jira,
        404,
        &fixture("jira-error-404.json"),
        "delete",
    );
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("The user named 'jdoe' does not exist"));
    // Jira's 401/403 often have an HTML or empty body.
    assert_eq!(
        error_for(Product::Jira, 401, "", "read").kind,
        ErrorKind::Auth
    );
    assert_eq!(
        error_for(
            Product::Jira,
            403,
            "<html><body>Forbidden</body></html>",
            "read"
        )
        .kind,
        ErrorKind::Forbidden
    );
}

#[test]
fn confluence_rest_error() {
    let e = error_for(
        Product::Confluence,
        402,
        &fixture("confluence-error-402.json"),
        "create",
    );
    assert_eq!(e.kind, ErrorKind::LicenceFull);
    assert!(e.message.contains("No more licences available"));
    let e = error_for(
        Product::Confluence,
        404,
        &fixture("confluence-error-404.json"),
        "disable",
    );
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("No user found with username: jdoe"));
    assert_eq!(
        error_for(
            Product::Confluence,
            409,
            r#"{"statusCode":409,"message":"exists"}"#,
            "x"
        )
        .kind,
        ErrorKind::Conflict
    );
}

#[test]
fn bitbucket_rest_errors() {
    let e = error_for(
        Product::Bitbucket,
        403,
        &fixture("bitbucket-error-403-licence.json"),
        "create",
    );
    assert_eq!(e.kind, ErrorKind::LicenceFull);
    assert!(e.message.contains("exceed the licence limit"));
    let p = parse_error_body(
        Product::Bitbucket,
        &fixture("bitbucket-error-401-permission.json"),
    );
    assert_eq!(
        p.exception.as_deref(),
        Some("com.atlassian.bitbucket.AuthorisationException")
    );
    // Bitbucket's 401 for an authenticated caller lacking permission is a permission problem.
    assert_eq!(
        error_for(
            Product::Bitbucket,
            401,
            &fixture("bitbucket-error-401-permission.json"),
            "x"
        )
        .kind,
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_for(
            Product::Bitbucket,
            409,
            &fixture("bitbucket-error-409.json"),
            "x"
        )
        .kind,
        ErrorKind::Conflict
    );
}

#[test]
fn crowd_error_entity() {
    let e = error_for(
        Product::Crowd,
        404,
        &fixture("crowd-error-404.json"),
        "read",
    );
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("User <jdoe> does not exist"));
    // Crowd answers 400 USER_NOT_FOUND when adding a missing user to a group.
    assert_eq!(
        error_for(
            Product::Crowd,
            400,
            &fixture("crowd-error-400-add-member.json"),
            "add"
        )
        .kind,
        ErrorKind::NotFound
    );
    let p = parse_error_body(Product::Crowd, &fixture("crowd-error-500.xml"));
    assert_eq!(p.reason.as_deref(), Some("OPERATION_FAILED"));
    assert_eq!(p.message, "User user2 already exists.");
    assert_eq!(
        error_for(
            Product::Crowd,
            500,
            &fixture("crowd-error-500.xml"),
            "rename"
        )
        .kind,
        ErrorKind::Conflict
    );
    let e = error_for(
        Product::Crowd,
        403,
        &fixture("crowd-403-address.html"),
        "read",
    );
    assert_eq!(e.kind, ErrorKind::Forbidden);
    assert!(
        e.message
            .contains("Client with address \"0:0:0:0:0:0:0:1\" is forbidden"),
        "{}",
        e.message
    );
    assert!(e.message.contains("remote addresses"));
}
