//! Snapshot tests of plans and reports for hand-written fixtures, one per planner rule.
//! Each snapshot holds the plan (YAML) and the text summary; review them when they change.

mod common;

use common::*;
use usersync_core::config::{
    AdoptMode, GroupSelector, LeaverAction, UsernameSource, UsernameTransform,
};
use usersync_core::engine::simulate;
use usersync_core::link::UserLink;
use usersync_core::plan::Plan;
use usersync_core::testkit::{Failures, FakeTarget};

/// Snapshots the plan (YAML) and the simulate report's text summary.
fn check(name: &str, plan: Plan) {
    let text = simulate(&plan).to_text();
    insta::assert_yaml_snapshot!(name, plan);
    insta::assert_snapshot!(format!("{name}_text"), text);
}

fn alice() -> usersync_core::model::SourceUser {
    su("u1", "alice@example.com", "Alice Anders")
}
fn bob() -> usersync_core::model::SourceUser {
    su("u2", "bob@example.com", "Bob Brown")
}
fn acc_alice() -> usersync_core::model::TargetAccount {
    ta(
        "alice@example.com",
        "Alice Anders",
        "alice@example.com",
        true,
        &[],
    )
}
fn acc_bob() -> usersync_core::model::TargetAccount {
    ta("bob@example.com", "Bob Brown", "bob@example.com", true, &[])
}

#[test]
fn create_users_and_group() {
    let src = source(
        vec![alice(), bob()],
        vec![sg("g1", "Engineering", &["u1", "u2"], &[])],
    );
    let mut s = settings();
    s.policy.access_groups = vec!["jira-software-users".into()];
    let p = make_plan(
        &src,
        &target(vec![], &["jira-software-users"]),
        &links(vec![], vec![]),
        &s,
        &caps(),
        NOW,
    );
    check("create_users_and_group", p);
}

#[test]
fn update_with_diff() {
    let src = source(vec![alice()], vec![]);
    let tgt = target(
        vec![ta(
            "alice@example.com",
            "Alice A.",
            "old@example.com",
            true,
            &[],
        )],
        &[],
    );
    let p = make_plan(
        &src,
        &tgt,
        &links(vec![ul("u1", "alice@example.com")], vec![]),
        &settings(),
        &caps(),
        NOW,
    );
    check("update_with_diff", p);
}

#[test]
fn rename() {
    let src = source(
        vec![su("u1", "alice.smith@example.com", "Alice Anders")],
        vec![sg("g1", "Engineering", &["u1"], &[])],
    );
    let tgt = target(
        vec![ta(
            "alice@example.com",
            "Alice Anders",
            "alice.smith@example.com",
            true,
            &["Engineering"],
        )],
        &["Engineering"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com")],
        vec![gl("g1", "Engineering")],
    );
    check(
        "rename",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
}

#[test]
fn rename_unsupported() {
    let src = source(
        vec![su("u1", "alice.smith@example.com", "Alice Smith")],
        vec![],
    );
    let tgt = target(vec![acc_alice()], &[]);
    let mut c = caps();
    c.rename = false;
    c.product = "Confluence Data Center".into();
    let lt = links(vec![ul("u1", "alice@example.com")], vec![]);
    check(
        "rename_unsupported",
        make_plan(&src, &tgt, &lt, &settings(), &c, NOW),
    );
}

#[test]
fn disabled_user_is_deactivated() {
    let src = source(
        vec![
            disabled(alice()),
            bob(),
            disabled(su("u3", "carol@example.com", "Carol")),
        ],
        vec![],
    );
    let tgt = target(vec![acc_alice(), acc_bob()], &[]);
    let lt = links(
        vec![ul("u1", "alice@example.com"), ul("u2", "bob@example.com")],
        vec![],
    );
    check(
        "disabled_user_is_deactivated",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
}

#[test]
fn leaver_deactivate() {
    // bob was deleted in the source: deactivated and removed from managed groups, kept in the
    // access group.
    let src = source(vec![alice()], vec![sg("g1", "Engineering", &["u1"], &[])]);
    let tgt = target(
        vec![
            ta(
                "alice@example.com",
                "Alice Anders",
                "alice@example.com",
                true,
                &["Engineering", "jira-users"],
            ),
            ta(
                "bob@example.com",
                "Bob Brown",
                "bob@example.com",
                true,
                &["Engineering", "jira-users"],
            ),
        ],
        &["Engineering", "jira-users"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com"), ul("u2", "bob@example.com")],
        vec![gl("g1", "Engineering")],
    );
    let mut s = settings();
    s.policy.access_groups = vec!["jira-users".into()];
    check(
        "leaver_deactivate",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn leaver_delete_with_grace() {
    // u2 active leaver → deactivate; u3 deactivated 10 days ago → wait; u4 deactivated 40 days
    // ago → delete.
    let src = source(vec![alice()], vec![]);
    let tgt = target(
        vec![
            acc_alice(),
            acc_bob(),
            ta(
                "carol@example.com",
                "Carol",
                "carol@example.com",
                false,
                &[],
            ),
            ta("dave@example.com", "Dave", "dave@example.com", false, &[]),
        ],
        &[],
    );
    let mut l3 = ul("u3", "carol@example.com");
    l3.deactivated_at_ms = Some(NOW - 10 * DAY);
    let mut l4 = ul("u4", "dave@example.com");
    l4.deactivated_at_ms = Some(NOW - 40 * DAY);
    let lt = links(
        vec![
            ul("u1", "alice@example.com"),
            ul("u2", "bob@example.com"),
            l3,
            l4,
        ],
        vec![],
    );
    let mut s = settings();
    s.policy.leaver_action = LeaverAction::Delete;
    s.policy.delete_grace_days = 30;
    check(
        "leaver_delete_with_grace",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn leaver_delete_no_grace() {
    let src = source(vec![alice()], vec![]);
    let tgt = target(vec![acc_alice(), acc_bob()], &[]);
    let lt = links(
        vec![ul("u1", "alice@example.com"), ul("u2", "bob@example.com")],
        vec![],
    );
    let mut s = settings();
    s.policy.leaver_action = LeaverAction::Delete;
    s.policy.delete_grace_days = 0;
    check(
        "leaver_delete_no_grace",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn leaver_keep() {
    let src = source(vec![alice()], vec![sg("g1", "Engineering", &["u1"], &[])]);
    let tgt = target(
        vec![
            acc_alice(),
            ta(
                "bob@example.com",
                "Bob Brown",
                "bob@example.com",
                true,
                &["Engineering"],
            ),
        ],
        &["Engineering"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com"), ul("u2", "bob@example.com")],
        vec![gl("g1", "Engineering")],
    );
    let mut s = settings();
    s.policy.leaver_action = LeaverAction::Keep;
    check("leaver_keep", make_plan(&src, &tgt, &lt, &s, &caps(), NOW));
}

#[test]
fn reactivate_returning_user() {
    let src = source(vec![alice()], vec![]);
    let tgt = target(
        vec![ta(
            "alice@example.com",
            "Alice Anders",
            "alice@example.com",
            false,
            &[],
        )],
        &[],
    );
    let mut l = ul("u1", "alice@example.com");
    l.deactivated_at_ms = Some(NOW - 5 * DAY);
    check(
        "reactivate_returning_user",
        make_plan(
            &src,
            &tgt,
            &links(vec![l], vec![]),
            &settings(),
            &caps(),
            NOW,
        ),
    );
}

#[test]
fn conflict_duplicate_username() {
    // u1 (linked) and u3 both map to alice@example.com: neither synced, u1's account untouched.
    let mut u3 = su("u3", "ALICE@example.com", "Other Alice");
    u3.mail = None;
    let src = source(vec![alice(), u3, bob()], vec![]);
    let tgt = target(vec![acc_alice()], &[]);
    let lt = links(vec![ul("u1", "alice@example.com")], vec![]);
    check(
        "conflict_duplicate_username",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
}

#[test]
fn conflict_unmanaged_account() {
    let src = source(vec![alice(), bob()], vec![]);
    let tgt = target(
        vec![
            acc_alice(),
            ta("jira-bot", "Bot", "bot@example.com", true, &[]),
        ],
        &[],
    );
    check(
        "conflict_unmanaged_account",
        make_plan(
            &src,
            &tgt,
            &links(vec![], vec![]),
            &settings(),
            &caps(),
            NOW,
        ),
    );
}

#[test]
fn adopt_by_username() {
    let src = source(vec![alice()], vec![sg("g1", "Engineering", &["u1"], &[])]);
    let tgt = target(
        vec![ta(
            "Alice@Example.com",
            "Alice",
            "alice@example.com",
            true,
            &[],
        )],
        &["engineering"],
    );
    let mut s = settings();
    s.policy.adopt_existing = AdoptMode::ByUsername;
    check(
        "adopt_by_username",
        make_plan(&src, &tgt, &links(vec![], vec![]), &s, &caps(), NOW),
    );
}

#[test]
fn adopt_by_email() {
    let src = source(vec![alice(), bob()], vec![]);
    // alice has a legacy login with her e-mail; bob's e-mail is on two accounts → not adopted.
    let tgt = target(
        vec![
            ta("aanders", "Alice Anders", "Alice@Example.com", true, &[]),
            ta("bb1", "Bob", "bob@example.com", true, &[]),
            ta("bb2", "Bob", "bob@example.com", true, &[]),
        ],
        &[],
    );
    let mut s = settings();
    s.policy.adopt_existing = AdoptMode::ByUsernameOrEmail;
    check(
        "adopt_by_email",
        make_plan(&src, &tgt, &links(vec![], vec![]), &s, &caps(), NOW),
    );
}

#[test]
fn protected_account() {
    // "admin" is linked but protected: not deactivated (disabled), not renamed, not removed from
    // groups; "Root" is protected and a leaver.
    let mut admin = su("u1", "admin.new@example.com", "Administrator");
    admin.enabled = false;
    let src = source(vec![admin], vec![sg("g1", "Engineering", &[], &[])]);
    let tgt = target(
        vec![
            ta(
                "admin",
                "Administrator",
                "admin.new@example.com",
                true,
                &["Engineering"],
            ),
            ta("root", "Root", "root@example.com", true, &["Engineering"]),
        ],
        &["Engineering"],
    );
    let lt = links(
        vec![ul("u1", "admin"), ul("u9", "root")],
        vec![gl("g1", "Engineering")],
    );
    let mut s = settings();
    s.mapping.username_source = UsernameSource::UpnLocalPart;
    s.policy.protected_accounts = vec!["admin".into(), "ROOT".into()];
    check(
        "protected_account",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn incomplete_read_removes_nothing() {
    let mut src = source(
        vec![
            alice(),
            disabled(bob()),
            su("u5", "erin@example.com", "Erin"),
        ],
        vec![sg("g1", "Engineering", &["u5"], &[])],
    );
    src.complete = false;
    src.warnings = vec!["listing group members failed on page 3 (HTTP 503)".into()];
    let tgt = target(
        vec![
            ta(
                "alice@example.com",
                "Alice Anders",
                "alice@example.com",
                true,
                &["Engineering"],
            ),
            acc_bob(),
            ta("carol@example.com", "Carol", "carol@example.com", true, &[]),
        ],
        &["Engineering", "Old Group"],
    );
    let lt = links(
        vec![
            ul("u1", "alice@example.com"),
            ul("u2", "bob@example.com"),
            ul("u3", "carol@example.com"),
        ],
        vec![gl("g1", "Engineering"), gl("g9", "Old Group")],
    );
    check(
        "incomplete_read_removes_nothing",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
}

fn guard_fixture() -> (
    usersync_core::model::SourceSnapshot,
    usersync_core::model::TargetSnapshot,
    usersync_core::link::LinkTable,
) {
    // 10 managed accounts, 6 left the source: 60% > 10% with 6 ≥ floor 5.
    let users: Vec<_> = (0..4)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let accounts = (0..10)
        .map(|i| {
            ta(
                &format!("user{i}@example.com"),
                &format!("User {i}"),
                &format!("user{i}@example.com"),
                true,
                &[],
            )
        })
        .collect();
    let lt = links(
        (0..10)
            .map(|i| ul(&format!("u{i}"), &format!("user{i}@example.com")))
            .collect(),
        vec![],
    );
    (source(users, vec![]), target(accounts, &[]), lt)
}

#[test]
fn guard_holds_mass_removal() {
    let (src, tgt, lt) = guard_fixture();
    let p = make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW);
    assert!(p.held.is_some());
    // Apply refuses: nothing is written.
    let fake = FakeTarget::new(caps(), tgt.clone());
    let (report, after) = apply_to(&p, &fake, &src, &lt, NOW);
    assert_eq!(fake.writes(), 0);
    assert_eq!(after, lt);
    assert_eq!(report.outcomes.applied, 0);
    check("guard_holds_mass_removal", p);
}

#[test]
fn guard_override() {
    let (src, tgt, lt) = guard_fixture();
    let mut s = settings();
    s.policy.guard.allow_mass_removal = true;
    check(
        "guard_override",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn deactivate_fallback_without_deactivate_capability() {
    let src = source(
        vec![alice(), disabled(bob())],
        vec![sg("g1", "Engineering", &["u1", "u2"], &[])],
    );
    let tgt = target(
        vec![
            ta(
                "alice@example.com",
                "Alice Anders",
                "alice@example.com",
                true,
                &["Engineering", "bitbucket-users"],
            ),
            ta(
                "bob@example.com",
                "Bob Brown",
                "bob@example.com",
                true,
                &["Engineering", "bitbucket-users"],
            ),
            ta(
                "carol@example.com",
                "Carol",
                "carol@example.com",
                true,
                &["Engineering", "bitbucket-users", "manual-group"],
            ),
        ],
        &["Engineering", "bitbucket-users", "manual-group"],
    );
    let lt = links(
        vec![
            ul("u1", "alice@example.com"),
            ul("u2", "bob@example.com"),
            ul("u3", "carol@example.com"),
        ],
        vec![gl("g1", "Engineering")],
    );
    let mut c = caps();
    c.deactivate = false;
    c.product = "Bitbucket Data Center".into();
    let mut s = settings();
    s.policy.access_groups = vec!["bitbucket-users".into()];
    check(
        "deactivate_fallback",
        make_plan(&src, &tgt, &lt, &s, &c, NOW),
    );
}

#[test]
fn groups_create_delete_adopt_conflict() {
    let src = source(
        vec![alice()],
        vec![
            sg("g1", "New Team", &["u1"], &[]),
            sg("g2", "Existing Team", &["u1"], &[]),
            sg("g3", "Renamed Team", &["u1"], &[]),
        ],
    );
    let tgt = target(
        vec![acc_alice()],
        &["existing team", "Old Name", "Gone Team", "unrelated"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com")],
        vec![gl("g3", "Old Name"), gl("g4", "Gone Team")],
    );
    check(
        "groups_create_delete_conflict",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
    let mut s = settings();
    s.policy.adopt_existing = AdoptMode::ByUsername;
    check("groups_adopt", make_plan(&src, &tgt, &lt, &s, &caps(), NOW));
}

#[test]
fn memberships_add_remove() {
    // alice joins Ops and leaves Eng; the unmanaged "contractor" in Eng is never touched;
    // manual-group is not managed.
    let src = source(
        vec![alice(), bob()],
        vec![
            sg("g1", "Eng", &["u2"], &[]),
            sg("g2", "Ops", &["u1", "u2"], &[]),
        ],
    );
    let tgt = target(
        vec![
            ta(
                "alice@example.com",
                "Alice Anders",
                "alice@example.com",
                true,
                &["Eng", "manual-group"],
            ),
            ta(
                "bob@example.com",
                "Bob Brown",
                "bob@example.com",
                true,
                &["Eng", "Ops"],
            ),
            ta("contractor", "Contractor", "c@example.com", true, &["Eng"]),
        ],
        &["Eng", "Ops", "manual-group"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com"), ul("u2", "bob@example.com")],
        vec![gl("g1", "Eng"), gl("g2", "Ops")],
    );
    check(
        "memberships_add_remove",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
    let mut c = caps();
    c.batch_membership = false;
    let src2 = source(
        vec![alice(), bob()],
        vec![sg("g2", "Ops", &["u1", "u2"], &[])],
    );
    check(
        "memberships_per_user",
        make_plan(
            &src2,
            &target(vec![], &[]),
            &links(vec![], vec![]),
            &settings(),
            &c,
            NOW,
        ),
    );
}

#[test]
fn nested_flatten_with_cycle() {
    // Parent ⊃ Child ⊃ Parent (cycle); Child ⊃ Leaf. Flattened: Parent = Child = {u1,u2,u3}.
    let src = source(
        vec![alice(), bob(), su("u3", "carol@example.com", "Carol")],
        vec![
            sg("g1", "Parent", &["u1"], &["g2"]),
            sg("g2", "Child", &["u2"], &["g1", "g3"]),
            sg("g3", "Leaf", &["u3"], &[]),
        ],
    );
    let mut s = settings();
    s.scope.flatten_nested = true;
    s.scope.include_groups = vec![GroupSelector::Name("parent".into())];
    check(
        "nested_flatten_with_cycle",
        make_plan(
            &src,
            &target(vec![], &[]),
            &links(vec![], vec![]),
            &s,
            &caps(),
            NOW,
        ),
    );
}

#[test]
fn scope_include_exclude_regex_id() {
    // Included: "jira-*" by regex and g9 by id; "jira-contractors" excluded. carol is only in
    // the excluded group → out of scope (linked → deactivated). dave is in no group.
    let src = source(
        vec![
            alice(),
            bob(),
            su("u3", "carol@example.com", "Carol"),
            su("u4", "dave@example.com", "Dave"),
        ],
        vec![
            sg("g1", "jira-devs", &["u1"], &[]),
            sg("g2", "jira-contractors", &["u3", "u1"], &[]),
            sg("g9", "Support", &["u2"], &[]),
            sg("g5", "Marketing", &["u4"], &[]),
        ],
    );
    let tgt = target(
        vec![ta(
            "carol@example.com",
            "Carol",
            "carol@example.com",
            true,
            &[],
        )],
        &[],
    );
    let lt = links(vec![ul("u3", "carol@example.com")], vec![]);
    let mut s = settings();
    s.scope.include_groups = vec![
        GroupSelector::Regex("^jira-".into()),
        GroupSelector::Id("g9".into()),
    ];
    s.scope.exclude_groups = vec![GroupSelector::Name("JIRA-Contractors".into())];
    check(
        "scope_include_exclude_regex_id",
        make_plan(&src, &tgt, &lt, &s, &caps(), NOW),
    );
}

#[test]
fn scope_bad_regex_is_held() {
    let src = source(vec![alice()], vec![]);
    let mut s = settings();
    s.scope.include_groups = vec![GroupSelector::Regex("jira-(".into())];
    check(
        "scope_bad_regex_is_held",
        make_plan(
            &src,
            &target(vec![], &[]),
            &links(vec![], vec![]),
            &s,
            &caps(),
            NOW,
        ),
    );
}

#[test]
fn invalid_usernames_skipped() {
    let mut no_upn = su("u4", "", "No Name");
    no_upn.mail = None;
    let mut guest = su(
        "u6",
        "first.last_partner.org#EXT#@tenant.onmicrosoft.com",
        "Guest User",
    );
    guest.mail = None;
    let src = source(
        vec![
            su("u1", "o'brien@example.com", "Quote"),
            su("u2", "a,b@example.com", "Comma"),
            su("u3", "has space@example.com", "Space"),
            no_upn,
            su("u5", &format!("{}@example.com", "x".repeat(250)), "Long"),
            guest,
        ],
        vec![],
    );
    check(
        "invalid_usernames_skipped",
        make_plan(
            &src,
            &target(vec![], &[]),
            &links(vec![], vec![]),
            &settings(),
            &caps(),
            NOW,
        ),
    );

    // Confluence: lower-case usernames only, and the lowercase transform is missing.
    let mut c = caps();
    c.lowercase_usernames_only = true;
    c.product = "Confluence Data Center".into();
    let mut s = settings();
    s.mapping.username_transforms = vec![UsernameTransform::StripDomain];
    let src = source(vec![su("u1", "Alice@example.com", "Alice"), bob()], vec![]);
    check(
        "uppercase_on_lowercase_only_target",
        make_plan(
            &src,
            &target(vec![], &[]),
            &links(vec![], vec![]),
            &s,
            &c,
            NOW,
        ),
    );
}

#[test]
fn avatars() {
    let src = source(
        vec![
            with_photo(alice(), "tag-new"),
            with_photo(bob(), "tag-same"),
            with_photo(su("u3", "carol@example.com", "Carol"), "tag-c"),
        ],
        vec![],
    );
    let tgt = target(vec![acc_alice(), acc_bob()], &[]);
    let mut la = ul("u1", "alice@example.com");
    la.photo_tag = Some("tag-old".into());
    let mut lb = ul("u2", "bob@example.com");
    lb.photo_tag = Some("tag-same".into());
    check(
        "avatars",
        make_plan(
            &src,
            &tgt,
            &links(vec![la, lb], vec![]),
            &settings(),
            &caps(),
            NOW,
        ),
    );
}

#[test]
fn interrupted_create_is_confirmed_not_duplicated() {
    // The journal recorded the intent (pending) but not the confirmation; the account exists.
    let src = source(vec![alice(), bob()], vec![]);
    let tgt = target(vec![acc_alice()], &[]);
    let pending = |sid: &str, name: &str| UserLink {
        source_id: sid.into(),
        username: name.into(),
        target_key: None,
        pending_username: Some(name.into()),
        deactivated_at_ms: None,
        photo_tag: None,
    };
    let lt = links(
        vec![
            pending("u1", "alice@example.com"),
            pending("u2", "bob@example.com"),
        ],
        vec![],
    );
    check(
        "interrupted_create",
        make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW),
    );
}

#[test]
fn report_after_apply_json() {
    // One create fails per item (licence full), one membership depends on it and is skipped.
    let src = source(
        vec![alice(), bob()],
        vec![sg("g1", "Engineering", &["u1", "u2"], &[])],
    );
    let mut c = caps();
    c.batch_membership = false;
    let fake = FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
        fail_usernames: [(
            "bob@example.com".to_string(),
            usersync_core::ports::ErrorKind::LicenceFull,
        )]
        .into(),
        ..Failures::default()
    });
    let lt = links(vec![], vec![]);
    let p = make_plan(&src, &fake.snapshot(), &lt, &settings(), &c, NOW);
    let (report, _) = apply_to(&p, &fake, &src, &lt, NOW);
    insta::assert_json_snapshot!("report_after_apply_json", report);
    insta::assert_snapshot!("report_after_apply_text", report.to_text());
}
