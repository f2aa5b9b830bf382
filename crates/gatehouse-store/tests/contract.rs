//! The `Store` contract of `gatehouse-core`, held to through `SqlStore` on SQLite and, when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set, on PostgreSQL: each test runs once per backend, on a
//! database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gatehouse_testkit::on_both_stores;

use std::time::Duration;

use common::{
    Backend, TestStore, browser_session, client, code, consent, family, role, roles, scopes, token,
    user,
};
use gatehouse_core::{
    AuditEvent, AuthMethod, Change, ChangeKind, Committed, EventFilter, FamilyFilter, GrantType,
    RevokedToken, RotateOutcome, Store, StoreError, StoredKey, Write,
};

on_both_stores!(
    clients_round_trip_and_page_in_id_order,
    a_taken_client_id_is_a_conflict,
    users_round_trip_and_are_found_by_username_in_any_case,
    a_taken_username_is_a_conflict_and_stores_nothing,
    roles_come_back_in_the_order_given_each_once,
    role_holders_are_found_by_exact_name,
    a_role_that_does_not_exist_cannot_be_given,
    a_held_role_cannot_be_deleted,
    roles_are_created_and_updated_through_commit,
    a_narrowed_role_cuts_off_its_holders_only,
    a_write_naming_a_missing_row_stores_nothing,
    every_write_that_needs_its_row_reports_it_missing,
    a_cut_off_only_moves_not_before_forward,
    blocking_ends_sessions_and_logs_each,
    client_writes_change_only_what_they_name,
    deleting_a_user_or_client_takes_its_sessions_and_roles,
    the_change_log_reads_by_range_by_list_and_by_time,
    a_commit_wakes_change_readers,
    a_family_is_created_only_for_a_usable_user,
    a_refresh_token_rotates_once,
    a_revoked_family_cannot_rotate,
    families_page_by_user_and_client,
    access_tokens_are_revoked_once,
    purge_deletes_only_what_expired,
    client_redirect_uris_and_consent_skipping_are_stored_and_updated,
    browser_sessions_round_trip_by_secret_hash,
    a_taken_browser_session_id_or_secret_is_a_conflict,
    touching_a_browser_session_only_moves_last_seen_forward,
    a_users_browser_sessions_list_live_ones_newest_first,
    an_authorization_code_round_trips_and_redeems_once,
    consents_are_replaced_when_given_again_and_listed_by_client,
    ending_a_browser_session_ends_exactly_its_families,
    revoking_a_consent_ends_only_that_clients_sessions_of_that_user,
    purge_deletes_expired_codes_and_expired_or_ended_browser_sessions,
    deleting_a_user_or_client_takes_its_browser_sign_ins,
    audit_events_filter_and_page_newest_first,
    signing_keys_keep_their_bytes_and_retire_others,
    a_database_from_another_migration_history_is_refused,
);

/// Far enough ahead that nothing in a test expires.
const LATER: i64 = 4_000_000_000;

/// Every change-log entry after `after`.
async fn changes_after(s: &TestStore, after: i64) -> Vec<Change> {
    s.changes_between(after, i64::MAX, 1000).await.unwrap()
}

/// Entries as (kind, subject, until), to compare whole.
fn entries(changes: &[Change]) -> Vec<(ChangeKind, String, Option<i64>)> {
    changes
        .iter()
        .map(|c| (c.kind, c.subject.clone(), c.until))
        .collect()
}

fn entry(kind: ChangeKind, subject: &str, until: Option<i64>) -> (ChangeKind, String, Option<i64>) {
    (kind, subject.to_owned(), until)
}

async fn done(s: &TestStore, writes: &[Write]) -> u64 {
    match s.commit(writes).await.unwrap() {
        Committed::Done { sessions_ended } => sessions_ended,
        Committed::Missing => panic!("a write found nothing: {writes:?}"),
    }
}

async fn roles_of_user(s: &TestStore, id: &str) -> Vec<String> {
    s.user(id).await.unwrap().unwrap().roles
}

async fn roles_of_client(s: &TestStore, id: &str) -> Vec<String> {
    s.client(id).await.unwrap().unwrap().roles
}

async fn add_role(s: &TestStore, name: &str) {
    done(s, &[Write::InsertRole(role(name, "audit:read"))]).await;
}

fn revoke_access(jti: &str, expires_at: i64) -> Write {
    Write::RevokeAccessToken(RevokedToken {
        jti: jti.into(),
        subject: "usr_a".into(),
        client_id: "cli_a".into(),
        expires_at,
        revoked_at: 1_700_000_000,
    })
}

fn set_user_roles(id: &str, held: &[&str], cutoff: Option<i64>) -> Write {
    Write::SetUserRoles {
        id: id.into(),
        roles: roles(held),
        cutoff,
        now: 1_700_000_200,
    }
}

fn cut_off_user(id: &str, not_before: i64) -> Write {
    Write::CutOffUser {
        id: id.into(),
        not_before,
        now: 1_700_000_300,
        tokens_expire_by: not_before + 900,
    }
}

/// A user with a live session on `client_id`.
async fn signed_in(s: &TestStore, family_id: &str, user_id: &str, client_id: &str) {
    let created = s
        .create_family(
            &family(family_id, user_id, client_id, LATER),
            &token(&format!("{family_id}-t1"), family_id, LATER),
            0,
        )
        .await
        .unwrap();
    assert!(created, "{family_id} should have been created");
}

// --- clients and users ---

async fn clients_round_trip_and_page_in_id_order(backend: Backend) {
    let s = TestStore::open(backend).await;
    let a = client("cli_a", &["user", "admin"]);
    let b = gatehouse_core::Client {
        secret_hash: None,
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::Password],
        scopes: None,
        registration_token_hash: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        blocked_at: Some(1_700_000_050),
        not_before: 1_700_000_060,
        ..client("cli_b", &[])
    };
    let c = client("cli_c", &["admin"]);
    for each in [&c, &a, &b] {
        s.insert_client(each).await.unwrap();
    }

    assert_eq!(s.client("cli_a").await.unwrap(), Some(a.clone()));
    assert_eq!(s.client("cli_b").await.unwrap(), Some(b.clone()));
    assert_eq!(s.client("cli_nope").await.unwrap(), None);
    assert_eq!(s.list_clients("", 2).await.unwrap(), [a, b]);
    assert_eq!(s.list_clients("cli_b", 2).await.unwrap(), [c]);
    assert!(s.list_clients("cli_c", 2).await.unwrap().is_empty());
}

async fn a_taken_client_id_is_a_conflict(backend: Backend) {
    let s = TestStore::open(backend).await;
    let original = client("cli_a", &["user"]);
    s.insert_client(&original).await.unwrap();
    let rival = gatehouse_core::Client {
        name: "another".into(),
        ..client("cli_a", &["admin"])
    };
    assert_eq!(
        s.insert_client(&rival).await,
        Err(StoreError::Conflict("that client id is taken".into()))
    );
    assert_eq!(s.client("cli_a").await.unwrap(), Some(original));
    assert!(!s.role_in_use("admin").await.unwrap());
}

async fn users_round_trip_and_are_found_by_username_in_any_case(backend: Backend) {
    let s = TestStore::open(backend).await;
    let alice = gatehouse_core::User {
        blocked_at: Some(1_700_000_010),
        not_before: 1_700_000_020,
        ..user("usr_a", "Alice", &["user", "admin"])
    };
    let bob = user("usr_b", "bob", &["user"]);
    let carol = user("usr_c", "carol", &[]);
    for each in [&carol, &bob, &alice] {
        s.insert_user(each).await.unwrap();
    }

    assert_eq!(s.user("usr_a").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user("usr_nope").await.unwrap(), None);
    assert_eq!(
        s.user_by_username("ALICE").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.user_by_username("Bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(s.user_by_username("nobody").await.unwrap(), None);
    assert_eq!(s.list_users("", 2).await.unwrap(), [alice, bob]);
    assert_eq!(s.list_users("usr_b", 2).await.unwrap(), [carol]);
    assert!(s.list_users("usr_c", 5).await.unwrap().is_empty());
}

async fn a_taken_username_is_a_conflict_and_stores_nothing(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "auditor").await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();

    // "Alice" and "alice" are one account.
    assert_eq!(
        s.insert_user(&user("usr_b", "Alice", &["auditor"])).await,
        Err(StoreError::Conflict("that username is taken".into()))
    );
    assert_eq!(s.user("usr_b").await.unwrap(), None);
    assert!(!s.role_in_use("auditor").await.unwrap());
    assert_eq!(s.list_users("", 10).await.unwrap().len(), 1);
}

// --- roles ---

async fn roles_come_back_in_the_order_given_each_once(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "auditor").await;
    s.insert_user(&user("usr_a", "alice", &["user", "admin", "user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &["auditor", "admin"]))
        .await
        .unwrap();
    assert_eq!(roles_of_user(&s, "usr_a").await, ["user", "admin"]);
    assert_eq!(roles_of_client(&s, "cli_a").await, ["auditor", "admin"]);

    done(&s, &[set_user_roles("usr_a", &["auditor", "user"], None)]).await;
    done(
        &s,
        &[Write::UpdateClient {
            client: client("cli_a", &["user", "auditor", "user"]),
            cutoff: None,
        }],
    )
    .await;
    assert_eq!(roles_of_user(&s, "usr_a").await, ["auditor", "user"]);
    assert_eq!(roles_of_client(&s, "cli_a").await, ["user", "auditor"]);
    assert_eq!(
        s.list_users("", 1).await.unwrap()[0].roles,
        ["auditor", "user"]
    );
    assert_eq!(
        s.list_clients("", 1).await.unwrap()[0].roles,
        ["user", "auditor"]
    );

    done(&s, &[set_user_roles("usr_a", &[], None)]).await;
    assert!(roles_of_user(&s, "usr_a").await.is_empty());
}

async fn role_holders_are_found_by_exact_name(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "a_b").await;
    add_role(&s, "ops").await;
    assert!(!s.role_in_use("user").await.unwrap());
    assert!(!s.role_in_use("a_b").await.unwrap());

    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &["a_b"])).await.unwrap();
    assert!(s.role_in_use("user").await.unwrap());
    assert!(s.role_in_use("a_b").await.unwrap());
    // No pattern matching: a part of a name, or one that would match as a `LIKE` pattern, is
    // not the name.
    for other in ["use", "users", "u%", "aXb", "a%", "%", "_", ""] {
        assert!(!s.role_in_use(other).await.unwrap(), "{other:?}");
    }
    assert!(!s.role_in_use("ops").await.unwrap());

    // Held by a client only, then by nobody.
    done(&s, &[set_user_roles("usr_a", &[], None)]).await;
    assert!(!s.role_in_use("user").await.unwrap());
    assert!(s.role_in_use("a_b").await.unwrap());
    done(
        &s,
        &[Write::UpdateClient {
            client: client("cli_a", &[]),
            cutoff: None,
        }],
    )
    .await;
    assert!(!s.role_in_use("a_b").await.unwrap());
}

async fn a_role_that_does_not_exist_cannot_be_given(backend: Backend) {
    let s = TestStore::open(backend).await;
    assert!(matches!(
        s.insert_user(&user("usr_g", "ghost", &["user", "ghost"]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.user("usr_g").await.unwrap(), None);
    assert_eq!(s.user_by_username("ghost").await.unwrap(), None);
    assert!(matches!(
        s.insert_client(&client("cli_g", &["ghost"])).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.client("cli_g").await.unwrap(), None);

    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &["user"])).await.unwrap();
    let before = s.latest_change().await.unwrap();
    assert!(matches!(
        s.commit(&[set_user_roles("usr_a", &["admin", "ghost"], Some(100))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.commit(&[Write::UpdateClient {
            client: client("cli_a", &["ghost"]),
            cutoff: Some(100),
        }])
        .await,
        Err(StoreError::Conflict(_))
    ));
    let alice = s.user("usr_a").await.unwrap().unwrap();
    assert_eq!((alice.roles, alice.not_before), (roles(&["user"]), 0));
    let cli = s.client("cli_a").await.unwrap().unwrap();
    assert_eq!((cli.roles, cli.not_before), (roles(&["user"]), 0));
    assert_eq!(s.latest_change().await.unwrap(), before);
}

async fn a_held_role_cannot_be_deleted(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "auditor").await;
    s.insert_user(&user("usr_a", "alice", &["auditor"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &["auditor"]))
        .await
        .unwrap();
    let before = s.latest_change().await.unwrap();
    let held = Err(StoreError::Conflict(
        "the role is still held by users or clients".into(),
    ));

    assert_eq!(s.commit(&[Write::DeleteRole("auditor".into())]).await, held);
    done(&s, &[set_user_roles("usr_a", &["user"], None)]).await;
    // Still held by the client.
    assert_eq!(s.commit(&[Write::DeleteRole("auditor".into())]).await, held);
    assert!(s.roles().await.unwrap().iter().any(|r| r.name == "auditor"));
    assert_eq!(changes_after(&s, before).await.len(), 0);

    done(
        &s,
        &[Write::UpdateClient {
            client: client("cli_a", &[]),
            cutoff: None,
        }],
    )
    .await;
    let before = s.latest_change().await.unwrap();
    done(&s, &[Write::DeleteRole("auditor".into())]).await;
    assert!(!s.roles().await.unwrap().iter().any(|r| r.name == "auditor"));
    assert_eq!(
        entries(&changes_after(&s, before).await),
        [entry(ChangeKind::Role, "auditor", None)]
    );
    assert_eq!(
        s.commit(&[Write::DeleteRole("auditor".into())]).await,
        Ok(Committed::Missing)
    );
}

async fn roles_are_created_and_updated_through_commit(backend: Backend) {
    let s = TestStore::open(backend).await;
    // The seeded roles, in name order.
    let seeded = s.roles().await.unwrap();
    assert_eq!(
        seeded
            .iter()
            .map(|r| (r.name.as_str(), r.scopes.to_string()))
            .collect::<Vec<_>>(),
        [
            (
                "admin",
                "admin fx:read fx:write orders posts rates:read".into()
            ),
            ("user", "fx:read orders posts rates:read".to_owned()),
        ]
    );

    done(&s, &[Write::InsertRole(role("auditor", "audit:read"))]).await;
    assert_eq!(
        s.commit(&[Write::InsertRole(role("auditor", "other"))])
            .await,
        Err(StoreError::Conflict("that role exists".into()))
    );
    let updated = role("auditor", "audit:read audit:write");
    done(
        &s,
        &[Write::UpdateRole {
            role: updated.clone(),
            cutoff: None,
        }],
    )
    .await;
    let stored = s.roles().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1], updated, "{stored:?}");
    assert_eq!(
        entries(&changes_after(&s, 0).await),
        [
            entry(ChangeKind::Role, "auditor", None),
            entry(ChangeKind::Role, "auditor", None),
        ]
    );
}

async fn a_narrowed_role_cuts_off_its_holders_only(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "auditor").await;
    s.insert_user(&user("usr_a", "alice", &["user", "auditor"]))
        .await
        .unwrap();
    s.insert_user(&user("usr_b", "bob", &["user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &["auditor"]))
        .await
        .unwrap();
    let before = s.latest_change().await.unwrap();

    done(
        &s,
        &[Write::UpdateRole {
            role: role("auditor", ""),
            cutoff: Some(1_000),
        }],
    )
    .await;
    assert_eq!(s.user("usr_a").await.unwrap().unwrap().not_before, 1_000);
    assert_eq!(s.client("cli_a").await.unwrap().unwrap().not_before, 1_000);
    assert_eq!(s.user("usr_b").await.unwrap().unwrap().not_before, 0);
    let mut logged = entries(&changes_after(&s, before).await);
    assert_eq!(logged.remove(0), entry(ChangeKind::Role, "auditor", None));
    logged.sort_by_key(|(kind, subject, until)| (kind.as_str(), subject.clone(), *until));
    assert_eq!(
        logged,
        [
            entry(ChangeKind::SubjectCutoff, "cli_a", Some(1_000)),
            entry(ChangeKind::SubjectCutoff, "usr_a", Some(1_000)),
        ]
    );
}

// --- commit ---

async fn a_write_naming_a_missing_row_stores_nothing(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    done(&s, &[revoke_access("jti-1", LATER)]).await;
    let before = s.latest_change().await.unwrap();

    let renamed = gatehouse_core::Client {
        name: "renamed".into(),
        ..client("cli_a", &["admin"])
    };
    let outcome = s
        .commit(&[
            set_user_roles("usr_a", &["user", "admin"], Some(500)),
            Write::UpdateClient {
                client: renamed,
                cutoff: None,
            },
            revoke_access("jti-2", LATER),
            cut_off_user("usr_ghost", 500),
        ])
        .await;

    assert_eq!(outcome, Ok(Committed::Missing));
    let alice = s.user("usr_a").await.unwrap().unwrap();
    assert_eq!((alice.roles, alice.not_before), (roles(&["user"]), 0));
    assert_eq!(s.client("cli_a").await.unwrap(), Some(client("cli_a", &[])));
    assert!(!s.access_token_revoked("jti-2").await.unwrap());
    assert_eq!(s.latest_change().await.unwrap(), before);
}

async fn every_write_that_needs_its_row_reports_it_missing(backend: Backend) {
    let s = TestStore::open(backend).await;
    let ghost = "ghost";
    let writes = [
        Write::UpdateClient {
            client: client(ghost, &[]),
            cutoff: None,
        },
        Write::UpdateClient {
            client: client(ghost, &[]),
            cutoff: Some(10),
        },
        Write::BlockClient {
            id: ghost.into(),
            not_before: 10,
            now: 10,
            tokens_expire_by: 20,
        },
        Write::UnblockClient {
            id: ghost.into(),
            now: 10,
        },
        Write::SetClientSecret(client(ghost, &[])),
        Write::CutOffClient {
            id: ghost.into(),
            not_before: 10,
            now: 10,
            tokens_expire_by: 20,
        },
        Write::DeleteClient {
            id: ghost.into(),
            cutoff: 10,
        },
        set_user_roles(ghost, &["user"], None),
        set_user_roles(ghost, &["user"], Some(10)),
        Write::BlockUser {
            id: ghost.into(),
            not_before: 10,
            now: 10,
            tokens_expire_by: 20,
        },
        Write::UnblockUser {
            id: ghost.into(),
            now: 10,
        },
        Write::SetUserPassword {
            id: ghost.into(),
            password_hash: "h".into(),
            not_before: 10,
            now: 10,
            tokens_expire_by: 20,
        },
        cut_off_user(ghost, 10),
        Write::DeleteUser {
            id: ghost.into(),
            cutoff: 10,
        },
        Write::UpdateRole {
            role: role(ghost, ""),
            cutoff: Some(10),
        },
        Write::DeleteRole(ghost.into()),
    ];
    for write in writes {
        assert_eq!(
            s.commit(std::slice::from_ref(&write)).await,
            Ok(Committed::Missing),
            "{write:?}"
        );
    }
    // Ending a session, a browser session or a consent that is not there changes nothing and is
    // no error.
    for write in [
        Write::RevokeSession {
            id: ghost.into(),
            now: 10,
            until: 20,
        },
        Write::EndBrowserSession {
            id: ghost.into(),
            now: 10,
            until: 20,
        },
        Write::RevokeConsent {
            user_id: ghost.into(),
            client_id: ghost.into(),
            now: 10,
            until: 20,
        },
    ] {
        assert_eq!(
            s.commit(std::slice::from_ref(&write)).await,
            Ok(Committed::Done { sessions_ended: 0 }),
            "{write:?}"
        );
    }
    assert_eq!(s.latest_change().await.unwrap(), 0);
}

async fn a_cut_off_only_moves_not_before_forward(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user", "admin"]))
        .await
        .unwrap();
    let not_before = async || s.user("usr_a").await.unwrap().unwrap().not_before;

    let mut expected = Vec::new();
    // (cut-off asked for, where it must leave not-before)
    for (asked, stands) in [(100, 100), (50, 101), (101, 102), (200, 200)] {
        done(&s, &[cut_off_user("usr_a", asked)]).await;
        assert_eq!(not_before().await, stands, "after a cut-off at {asked}");
        expected.push(entry(ChangeKind::SubjectCutoff, "usr_a", Some(stands)));
    }
    // Taking a role away cuts off too, by the same rule; giving one does not.
    done(&s, &[set_user_roles("usr_a", &["user"], Some(150))]).await;
    assert_eq!(not_before().await, 201);
    expected.push(entry(ChangeKind::SubjectCutoff, "usr_a", Some(201)));
    done(&s, &[set_user_roles("usr_a", &["user", "admin"], None)]).await;
    assert_eq!(not_before().await, 201);
    done(
        &s,
        &[Write::SetUserPassword {
            id: "usr_a".into(),
            password_hash: "new-hash".into(),
            not_before: 300,
            now: 1_700_000_400,
            tokens_expire_by: 1_200,
        }],
    )
    .await;
    let alice = s.user("usr_a").await.unwrap().unwrap();
    assert_eq!(
        (
            alice.not_before,
            alice.password_hash.as_str(),
            alice.updated_at
        ),
        (300, "new-hash", 1_700_000_400)
    );
    expected.push(entry(ChangeKind::SubjectCutoff, "usr_a", Some(300)));
    assert_eq!(entries(&changes_after(&s, 0).await), expected);

    // Clients follow the same rule.
    s.insert_client(&client("cli_a", &["user"])).await.unwrap();
    let cut_off_client = |not_before| Write::CutOffClient {
        id: "cli_a".into(),
        not_before,
        now: 1_700_000_500,
        tokens_expire_by: 2_000,
    };
    done(&s, &[cut_off_client(400)]).await;
    done(&s, &[cut_off_client(300)]).await;
    done(
        &s,
        &[Write::UpdateClient {
            client: client("cli_a", &[]),
            cutoff: Some(350),
        }],
    )
    .await;
    assert_eq!(s.client("cli_a").await.unwrap().unwrap().not_before, 402);
}

async fn blocking_ends_sessions_and_logs_each(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_client(&client("cli_b", &[])).await.unwrap();
    signed_in(&s, "fam_1", "usr_a", "cli_a").await;
    signed_in(&s, "fam_2", "usr_a", "cli_b").await;
    signed_in(&s, "fam_3", "usr_b", "cli_b").await;
    let before = s.latest_change().await.unwrap();

    let block = Write::BlockUser {
        id: "usr_a".into(),
        not_before: 100,
        now: 1_700_000_500,
        tokens_expire_by: 900,
    };
    assert_eq!(done(&s, std::slice::from_ref(&block)).await, 2);
    let alice = s.user("usr_a").await.unwrap().unwrap();
    assert_eq!(
        (alice.blocked_at, alice.not_before),
        (Some(1_700_000_500), 100)
    );
    for (id, revoked) in [("fam_1", true), ("fam_2", true), ("fam_3", false)] {
        let f = s.family(id).await.unwrap().unwrap();
        assert_eq!(f.revoked_at.is_some(), revoked, "{id}");
    }
    let mut logged = entries(&changes_after(&s, before).await);
    logged.sort_by_key(|(kind, subject, until)| (kind.as_str(), subject.clone(), *until));
    assert_eq!(
        logged,
        [
            entry(ChangeKind::SessionRevoked, "fam_1", Some(900)),
            entry(ChangeKind::SessionRevoked, "fam_2", Some(900)),
            entry(ChangeKind::SubjectCutoff, "usr_a", Some(100)),
        ]
    );

    // Blocking again ends nothing more and keeps the first block's time.
    let again = Write::BlockUser {
        id: "usr_a".into(),
        not_before: 100,
        now: 1_700_000_900,
        tokens_expire_by: 900,
    };
    assert_eq!(done(&s, &[again]).await, 0);
    assert_eq!(
        s.user("usr_a").await.unwrap().unwrap().blocked_at,
        Some(1_700_000_500)
    );
    done(
        &s,
        &[Write::UnblockUser {
            id: "usr_a".into(),
            now: 1_700_001_000,
        }],
    )
    .await;
    let alice = s.user("usr_a").await.unwrap().unwrap();
    assert_eq!((alice.blocked_at, alice.updated_at), (None, 1_700_001_000));

    // A blocked client's sessions end whoever signed in through it.
    let block_client = Write::BlockClient {
        id: "cli_b".into(),
        not_before: 100,
        now: 1_700_001_100,
        tokens_expire_by: 900,
    };
    assert_eq!(done(&s, &[block_client]).await, 1);
    assert!(
        s.family("fam_3")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        s.client("cli_b").await.unwrap().unwrap().blocked_at,
        Some(1_700_001_100)
    );
}

async fn client_writes_change_only_what_they_name(backend: Backend) {
    let s = TestStore::open(backend).await;
    let original = client("cli_a", &["user"]);
    s.insert_client(&original).await.unwrap();
    done(
        &s,
        &[Write::BlockClient {
            id: "cli_a".into(),
            not_before: 100,
            now: 1_700_000_500,
            tokens_expire_by: 900,
        }],
    )
    .await;
    let before = s.latest_change().await.unwrap();

    // An update built from a stale read (unblocked, old secret) changes metadata only.
    let update = gatehouse_core::Client {
        name: "renamed".into(),
        auth_method: AuthMethod::ClientSecretPost,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Some(scopes("fx:read")),
        secret_hash: Some("stale".into()),
        updated_at: 1_700_000_600,
        ..client("cli_a", &["admin", "user"])
    };
    done(
        &s,
        &[Write::UpdateClient {
            client: update.clone(),
            cutoff: None,
        }],
    )
    .await;
    let stored = s.client("cli_a").await.unwrap().unwrap();
    let expected = gatehouse_core::Client {
        secret_hash: original.secret_hash.clone(),
        blocked_at: Some(1_700_000_500),
        not_before: 100,
        ..update
    };
    assert_eq!(stored, expected);

    let rotated = gatehouse_core::Client {
        secret_hash: Some("new-secret".into()),
        previous_secret_hash: original.secret_hash.clone(),
        previous_secret_expires_at: Some(1_700_003_600),
        updated_at: 1_700_000_700,
        ..client("cli_a", &[])
    };
    done(&s, &[Write::SetClientSecret(rotated)]).await;
    done(
        &s,
        &[Write::UnblockClient {
            id: "cli_a".into(),
            now: 1_700_000_800,
        }],
    )
    .await;
    let stored = s.client("cli_a").await.unwrap().unwrap();
    assert_eq!(
        stored,
        gatehouse_core::Client {
            secret_hash: Some("new-secret".into()),
            previous_secret_hash: original.secret_hash.clone(),
            previous_secret_expires_at: Some(1_700_003_600),
            blocked_at: None,
            updated_at: 1_700_000_800,
            ..expected
        }
    );
    assert_eq!(
        entries(&changes_after(&s, before).await),
        [
            entry(ChangeKind::Client, "cli_a", None),
            entry(ChangeKind::Client, "cli_a", None),
            entry(ChangeKind::Client, "cli_a", None),
        ]
    );
}

async fn deleting_a_user_or_client_takes_its_sessions_and_roles(backend: Backend) {
    let s = TestStore::open(backend).await;
    add_role(&s, "auditor").await;
    s.insert_user(&user("usr_a", "alice", &["auditor"]))
        .await
        .unwrap();
    s.insert_user(&user("usr_b", "bob", &["user"]))
        .await
        .unwrap();
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_client(&client("cli_b", &["auditor"]))
        .await
        .unwrap();
    signed_in(&s, "fam_a", "usr_a", "cli_a").await;
    signed_in(&s, "fam_b", "usr_b", "cli_b").await;
    let before = s.latest_change().await.unwrap();

    done(
        &s,
        &[Write::DeleteUser {
            id: "usr_a".into(),
            cutoff: 100,
        }],
    )
    .await;
    assert_eq!(s.user("usr_a").await.unwrap(), None);
    assert_eq!(s.family("fam_a").await.unwrap(), None);
    assert_eq!(s.refresh_token("fam_a-t1").await.unwrap(), None);
    assert!(s.role_in_use("auditor").await.unwrap(), "cli_b holds it");

    done(
        &s,
        &[Write::DeleteClient {
            id: "cli_b".into(),
            cutoff: 200,
        }],
    )
    .await;
    assert_eq!(s.client("cli_b").await.unwrap(), None);
    assert_eq!(s.family("fam_b").await.unwrap(), None);
    assert!(!s.role_in_use("auditor").await.unwrap());
    // With its holders gone, the role can go.
    done(&s, &[Write::DeleteRole("auditor".into())]).await;

    assert_eq!(
        entries(&changes_after(&s, before).await),
        [
            entry(ChangeKind::SubjectCutoff, "usr_a", Some(100)),
            entry(ChangeKind::Client, "cli_b", None),
            entry(ChangeKind::SubjectCutoff, "cli_b", Some(200)),
            entry(ChangeKind::Role, "auditor", None),
        ]
    );
}

// --- the change log ---

async fn the_change_log_reads_by_range_by_list_and_by_time(backend: Backend) {
    let s = TestStore::open(backend).await;
    assert_eq!(s.latest_change().await.unwrap(), 0);
    let started = gatehouse_core::Clock::now(&gatehouse_core::SystemClock);
    done(&s, &[revoke_access("jti-1", 5_000)]).await;
    // Several writes in one commit: their entries in order, in one transaction.
    done(
        &s,
        &[revoke_access("jti-2", 6_000), revoke_access("jti-3", 7_000)],
    )
    .await;
    let finished = gatehouse_core::Clock::now(&gatehouse_core::SystemClock);

    let all = changes_after(&s, 0).await;
    assert_eq!(
        entries(&all),
        [
            entry(ChangeKind::TokenRevoked, "jti-1", Some(5_000)),
            entry(ChangeKind::TokenRevoked, "jti-2", Some(6_000)),
            entry(ChangeKind::TokenRevoked, "jti-3", Some(7_000)),
        ]
    );
    let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(all.iter().all(|c| (started..=finished).contains(&c.at)));
    let (s1, s2, s3) = (seqs[0], seqs[1], seqs[2]);
    assert_eq!(s.latest_change().await.unwrap(), s3);

    let between = async |after, upto, limit| -> Vec<i64> {
        s.changes_between(after, upto, limit)
            .await
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect()
    };
    assert_eq!(between(0, s2, 10).await, [s1, s2]);
    assert_eq!(between(s1, s3, 1).await, [s2]);
    assert_eq!(between(s3, i64::MAX, 10).await, Vec::<i64>::new());

    let found = s.changes_in(&[s3, s3 + 1000, s1]).await.unwrap();
    assert_eq!(found.iter().map(|c| c.seq).collect::<Vec<_>>(), [s1, s3]);
    assert_eq!(found[1], all[2]);
    assert!(s.changes_in(&[]).await.unwrap().is_empty());

    assert_eq!(s.first_change_since(0).await.unwrap(), Some(s1));
    assert_eq!(s.first_change_since(started).await.unwrap(), Some(s1));
    assert_eq!(s.first_change_since(finished + 3_600).await.unwrap(), None);
}

async fn a_commit_wakes_change_readers(backend: Backend) {
    let s = TestStore::open(backend).await;
    // On PostgreSQL another node's store, woken by NOTIFY; on SQLite the committing one.
    let reader = match backend {
        Backend::Sqlite => s.store.clone(),
        Backend::Postgres => gatehouse_store::SqlStore::connect(&s.url).await.unwrap(),
    };
    let waiting = tokio::spawn(async move { reader.change_notified().await });
    // A reader that starts listening after a commit misses it (and polls): commit until heard.
    for attempt in 0..20 {
        done(&s, &[revoke_access(&format!("jti-{attempt}"), LATER)]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if waiting.is_finished() {
            return;
        }
    }
    panic!("no reader was woken by 20 commits");
}

// --- sessions ---

async fn a_family_is_created_only_for_a_usable_user(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let fam = family("fam_1", "usr_a", "cli_a", LATER);
    let first = token("tok_1", "fam_1", LATER);

    assert!(s.create_family(&fam, &first, 0).await.unwrap());
    assert_eq!(s.family("fam_1").await.unwrap(), Some(fam.clone()));
    assert_eq!(s.refresh_token("tok_1").await.unwrap(), Some((first, fam)));
    assert_eq!(s.refresh_token("tok_nope").await.unwrap(), None);

    // Cut off after the sign-in read the user: the sign-in leaves nothing behind.
    done(&s, &[cut_off_user("usr_a", 100)]).await;
    let late = family("fam_2", "usr_a", "cli_a", LATER);
    assert!(
        !s.create_family(&late, &token("tok_2", "fam_2", LATER), 50)
            .await
            .unwrap()
    );
    assert_eq!(s.family("fam_2").await.unwrap(), None);
    assert_eq!(s.refresh_token("tok_2").await.unwrap(), None);
    // A sign-in that read the user after the cut-off goes ahead.
    assert!(
        s.create_family(&late, &token("tok_2", "fam_2", LATER), 100)
            .await
            .unwrap()
    );

    // Blocked, or not there: no session.
    done(
        &s,
        &[Write::BlockUser {
            id: "usr_a".into(),
            not_before: 100,
            now: 1_700_000_500,
            tokens_expire_by: 900,
        }],
    )
    .await;
    let blocked = family("fam_3", "usr_a", "cli_a", LATER);
    assert!(
        !s.create_family(&blocked, &token("tok_3", "fam_3", LATER), 1_000)
            .await
            .unwrap()
    );
    let nobody = family("fam_4", "usr_nobody", "cli_a", LATER);
    assert!(
        !s.create_family(&nobody, &token("tok_4", "fam_4", LATER), 0)
            .await
            .unwrap()
    );
    assert_eq!(s.family("fam_3").await.unwrap(), None);
    assert_eq!(s.family("fam_4").await.unwrap(), None);
}

async fn a_refresh_token_rotates_once(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    signed_in(&s, "fam_1", "usr_a", "cli_a").await;
    let now = 1_700_000_600;

    let second = token("tok_2", "fam_1", LATER);
    assert_eq!(
        s.rotate_refresh_token("fam_1-t1", &second, now).await,
        Ok(RotateOutcome::Rotated)
    );
    let (old, fam) = s.refresh_token("fam_1-t1").await.unwrap().unwrap();
    assert_eq!(old.rotated_at, Some(now));
    assert_eq!(fam.last_used_at, now);
    assert_eq!(s.refresh_token("tok_2").await.unwrap(), Some((second, fam)));

    // A replay of the rotated token rotates nothing.
    assert_eq!(
        s.rotate_refresh_token("fam_1-t1", &token("tok_x", "fam_1", LATER), now + 1)
            .await,
        Ok(RotateOutcome::AlreadyRotated)
    );
    assert_eq!(s.refresh_token("tok_x").await.unwrap(), None);
    assert_eq!(
        s.refresh_token("fam_1-t1")
            .await
            .unwrap()
            .unwrap()
            .0
            .rotated_at,
        Some(now)
    );

    // Of concurrent rotations of one token, exactly one wins.
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let store = s.store.clone();
            tokio::spawn(async move {
                let next = token(&format!("tok_3_{i}"), "fam_1", LATER);
                store.rotate_refresh_token("tok_2", &next, now + 2).await
            })
        })
        .collect();
    let mut rotated = 0;
    for racer in racers {
        if racer.await.unwrap().unwrap() == RotateOutcome::Rotated {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}

async fn a_revoked_family_cannot_rotate(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    signed_in(&s, "fam_1", "usr_a", "cli_a").await;
    let end = Write::RevokeSession {
        id: "fam_1".into(),
        now: 1_700_000_700,
        until: 1_700_001_600,
    };

    done(&s, std::slice::from_ref(&end)).await;
    assert_eq!(
        s.family("fam_1").await.unwrap().unwrap().revoked_at,
        Some(1_700_000_700)
    );
    assert_eq!(
        s.rotate_refresh_token("fam_1-t1", &token("tok_2", "fam_1", LATER), 1_700_000_800)
            .await,
        Ok(RotateOutcome::AlreadyRotated)
    );
    assert_eq!(s.refresh_token("tok_2").await.unwrap(), None);
    assert_eq!(
        s.refresh_token("fam_1-t1")
            .await
            .unwrap()
            .unwrap()
            .0
            .rotated_at,
        None
    );

    // Ending it again changes nothing: no second entry.
    done(&s, &[end]).await;
    assert_eq!(
        entries(&changes_after(&s, 0).await),
        [entry(
            ChangeKind::SessionRevoked,
            "fam_1",
            Some(1_700_001_600)
        )]
    );
}

async fn families_page_by_user_and_client(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_client(&client("cli_b", &[])).await.unwrap();
    signed_in(&s, "fam_1", "usr_a", "cli_a").await;
    signed_in(&s, "fam_2", "usr_a", "cli_b").await;
    signed_in(&s, "fam_3", "usr_b", "cli_a").await;

    let ids = async |user: Option<&str>, client: Option<&str>, after: &str, limit| {
        let filter = FamilyFilter {
            user_id: user.map(Into::into),
            client_id: client.map(Into::into),
        };
        s.list_families(&filter, after, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(None, None, "", 10).await, ["fam_1", "fam_2", "fam_3"]);
    assert_eq!(ids(Some("usr_a"), None, "", 10).await, ["fam_1", "fam_2"]);
    assert_eq!(ids(None, Some("cli_a"), "", 10).await, ["fam_1", "fam_3"]);
    assert_eq!(ids(Some("usr_a"), Some("cli_a"), "", 10).await, ["fam_1"]);
    assert_eq!(ids(None, None, "", 1).await, ["fam_1"]);
    assert_eq!(ids(None, None, "fam_1", 1).await, ["fam_2"]);
    assert_eq!(
        ids(Some("usr_b"), None, "fam_3", 10).await,
        Vec::<String>::new()
    );
    assert_eq!(
        s.list_families(&FamilyFilter::default(), "", 1)
            .await
            .unwrap()[0],
        family("fam_1", "usr_a", "cli_a", LATER)
    );
}

async fn access_tokens_are_revoked_once(backend: Backend) {
    let s = TestStore::open(backend).await;
    assert!(!s.access_token_revoked("jti-1").await.unwrap());
    done(&s, &[revoke_access("jti-1", 5_000)]).await;
    assert!(s.access_token_revoked("jti-1").await.unwrap());
    assert!(!s.access_token_revoked("jti-2").await.unwrap());

    // Revoking it again is no error and logs nothing new.
    done(&s, &[revoke_access("jti-1", 5_000)]).await;
    assert_eq!(
        entries(&changes_after(&s, 0).await),
        [entry(ChangeKind::TokenRevoked, "jti-1", Some(5_000))]
    );
}

async fn purge_deletes_only_what_expired(backend: Backend) {
    let s = TestStore::open(backend).await;
    // Change-log entries are stamped with the clock: purge two days on, past their day.
    let purge_at = gatehouse_core::Clock::now(&gatehouse_core::SystemClock) + 2 * 24 * 3600;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    done(&s, &[revoke_access("jti-old", purge_at - 1)]).await;
    done(&s, &[revoke_access("jti-live", purge_at + 100)]).await;
    for (id, expires_at) in [("fam_old", purge_at - 1), ("fam_live", purge_at + 100)] {
        let first = token(&format!("{id}-t1"), id, expires_at);
        let fam = family(id, "usr_a", "cli_a", expires_at);
        assert!(s.create_family(&fam, &first, 0).await.unwrap());
    }
    for (id, at) in [("evt_old", 100), ("evt_new", 200)] {
        s.record_event(&event(id, at, "alice", "user.signin"))
            .await
            .unwrap();
    }
    let logged = changes_after(&s, 0).await.len() as u64;
    let newest = s.latest_change().await.unwrap();

    // A token, a family, and every change-log entry but the newest; no audit events unasked.
    assert_eq!(
        s.purge_expired(purge_at, None).await.unwrap(),
        1 + 1 + (logged - 1)
    );
    assert!(!s.access_token_revoked("jti-old").await.unwrap());
    assert!(s.access_token_revoked("jti-live").await.unwrap());
    assert_eq!(s.family("fam_old").await.unwrap(), None);
    assert_eq!(s.refresh_token("fam_old-t1").await.unwrap(), None);
    assert!(s.family("fam_live").await.unwrap().is_some());
    assert!(s.refresh_token("fam_live-t1").await.unwrap().is_some());
    let left: Vec<i64> = changes_after(&s, 0).await.iter().map(|c| c.seq).collect();
    assert_eq!(
        left,
        [newest],
        "the newest entry tells where the sequence stands"
    );
    assert_eq!(s.latest_change().await.unwrap(), newest);
    assert_eq!(s.recent_events(10).await.unwrap().len(), 2);

    assert_eq!(s.purge_expired(purge_at, Some(150)).await.unwrap(), 1);
    let kept: Vec<String> = s
        .recent_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(kept, ["evt_new"]);
    // Nothing left to purge.
    assert_eq!(s.purge_expired(purge_at, Some(150)).await.unwrap(), 0);
}

// --- browser sign-in: clients' redirect URIs, browser sessions, codes, consents ---

async fn client_redirect_uris_and_consent_skipping_are_stored_and_updated(backend: Backend) {
    let s = TestStore::open(backend).await;
    let first_party = client("cli_a", &[]);
    assert_eq!(first_party.redirect_uris.len(), 2);
    assert!(first_party.skip_consent);
    let third_party = gatehouse_core::Client {
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        skip_consent: false,
        ..client("cli_b", &[])
    };
    s.insert_client(&first_party).await.unwrap();
    s.insert_client(&third_party).await.unwrap();
    assert_eq!(s.client("cli_a").await.unwrap(), Some(first_party.clone()));
    assert_eq!(
        s.list_clients("", 10).await.unwrap(),
        [first_party.clone(), third_party.clone()]
    );

    // They are metadata: an update replaces them, with a cut-off or without.
    let moved = gatehouse_core::Client {
        redirect_uris: vec!["https://new.example.test/cb?x=1".into()],
        post_logout_redirect_uris: vec![
            "https://new.example.test/bye".into(),
            "https://new.example.test/".into(),
        ],
        skip_consent: false,
        ..first_party.clone()
    };
    let opened = gatehouse_core::Client {
        redirect_uris: vec!["com.example.app:/callback".into()],
        post_logout_redirect_uris: vec!["com.example.app:/signed-out".into()],
        skip_consent: true,
        ..third_party.clone()
    };
    done(
        &s,
        &[
            Write::UpdateClient {
                client: moved.clone(),
                cutoff: None,
            },
            Write::UpdateClient {
                client: opened.clone(),
                cutoff: Some(100),
            },
        ],
    )
    .await;
    assert_eq!(s.client("cli_a").await.unwrap(), Some(moved));
    assert_eq!(
        s.client("cli_b").await.unwrap(),
        Some(gatehouse_core::Client {
            not_before: 100,
            ..opened
        })
    );
}

async fn browser_sessions_round_trip_by_secret_hash(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let live = browser_session("bs_1", "usr_a", 1_700_000_000, LATER);
    // Ended, and with nothing optional set.
    let ended = gatehouse_core::BrowserSession {
        ended_at: Some(1_700_000_300),
        last_seen_at: 1_700_000_200,
        ip: None,
        user_agent: None,
        ..browser_session("bs_2", "usr_a", 1_700_000_100, LATER)
    };
    s.insert_browser_session(&live).await.unwrap();
    s.insert_browser_session(&ended).await.unwrap();

    assert_eq!(
        s.browser_session("secret-of-bs_1").await.unwrap(),
        Some(live)
    );
    assert_eq!(
        s.browser_session("secret-of-bs_2").await.unwrap(),
        Some(ended)
    );
    // By the secret's hash only, not by the public id.
    assert_eq!(s.browser_session("bs_1").await.unwrap(), None);
    assert_eq!(s.browser_session("secret-of-bs_3").await.unwrap(), None);
}

async fn a_taken_browser_session_id_or_secret_is_a_conflict(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let original = browser_session("bs_1", "usr_a", 1_700_000_000, LATER);
    s.insert_browser_session(&original).await.unwrap();
    let taken = Err(StoreError::Conflict(
        "that browser session id or secret is taken".into(),
    ));

    let same_secret = gatehouse_core::BrowserSession {
        secret_hash: original.secret_hash.clone(),
        ..browser_session("bs_2", "usr_a", 1_700_000_100, LATER)
    };
    assert_eq!(s.insert_browser_session(&same_secret).await, taken);
    let same_id = gatehouse_core::BrowserSession {
        secret_hash: "another-secret".into(),
        ..browser_session("bs_1", "usr_a", 1_700_000_100, LATER)
    };
    assert_eq!(s.insert_browser_session(&same_id).await, taken);

    assert_eq!(
        s.browser_session(&original.secret_hash).await.unwrap(),
        Some(original)
    );
    assert_eq!(s.browser_session("another-secret").await.unwrap(), None);
    assert_eq!(
        s.browser_sessions_of("usr_a", 0)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["bs_1"]
    );
}

async fn touching_a_browser_session_only_moves_last_seen_forward(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let original = browser_session("bs_1", "usr_a", 1_700_000_000, LATER);
    let other = browser_session("bs_2", "usr_a", 1_700_000_000, LATER);
    s.insert_browser_session(&original).await.unwrap();
    s.insert_browser_session(&other).await.unwrap();
    let last_seen = async |secret: &str| {
        s.browser_session(secret)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at
    };

    s.touch_browser_session("bs_1", 1_700_000_500)
        .await
        .unwrap();
    assert_eq!(last_seen("secret-of-bs_1").await, 1_700_000_500);
    // A request that arrives late does not move it back.
    s.touch_browser_session("bs_1", 1_700_000_400)
        .await
        .unwrap();
    assert_eq!(last_seen("secret-of-bs_1").await, 1_700_000_500);
    // Nothing else changes, here or in another session.
    assert_eq!(
        s.browser_session("secret-of-bs_1").await.unwrap(),
        Some(gatehouse_core::BrowserSession {
            last_seen_at: 1_700_000_500,
            ..original
        })
    );
    assert_eq!(
        s.browser_session("secret-of-bs_2").await.unwrap(),
        Some(other)
    );
    // One that is not there is no error.
    s.touch_browser_session("bs_ghost", 1_700_000_500)
        .await
        .unwrap();
}

async fn a_users_browser_sessions_list_live_ones_newest_first(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    let now = 1_700_001_000;
    let sessions = [
        browser_session("bs_1", "usr_a", 1_700_000_100, LATER),
        // Two in one second: by id.
        browser_session("bs_3", "usr_a", 1_700_000_300, LATER),
        browser_session("bs_2", "usr_a", 1_700_000_300, now + 1),
        gatehouse_core::BrowserSession {
            ended_at: Some(1_700_000_500),
            ..browser_session("bs_ended", "usr_a", 1_700_000_400, LATER)
        },
        // Expires at `now`: over.
        browser_session("bs_expired", "usr_a", 1_700_000_400, now),
        browser_session("bs_bob", "usr_b", 1_700_000_400, LATER),
    ];
    for each in &sessions {
        s.insert_browser_session(each).await.unwrap();
    }

    let listed = s.browser_sessions_of("usr_a", now).await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        ["bs_2", "bs_3", "bs_1"]
    );
    assert_eq!(listed[2], sessions[0]);
    assert_eq!(
        s.browser_sessions_of("usr_b", now).await.unwrap(),
        [sessions[5].clone()]
    );
    assert!(
        s.browser_sessions_of("usr_nobody", now)
            .await
            .unwrap()
            .is_empty()
    );
    // Later, fewer are live.
    assert_eq!(
        s.browser_sessions_of("usr_a", now + 1)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["bs_3", "bs_1"]
    );
}

async fn an_authorization_code_round_trips_and_redeems_once(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let first = code("code_1", "cli_a", "usr_a", LATER);
    let plain = gatehouse_core::AuthorizationCode {
        nonce: None,
        ..code("code_2", "cli_a", "usr_a", LATER)
    };
    s.insert_authorization_code(&first).await.unwrap();
    s.insert_authorization_code(&plain).await.unwrap();
    assert_eq!(
        s.authorization_code("code_1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        s.authorization_code("code_2").await.unwrap(),
        Some(plain.clone())
    );
    assert_eq!(s.authorization_code("code_x").await.unwrap(), None);
    assert_eq!(
        s.insert_authorization_code(&code("code_1", "cli_a", "usr_a", 5))
            .await,
        Err(StoreError::Conflict(
            "that authorization code exists".into()
        ))
    );

    let now = 1_700_000_020;
    assert!(
        s.redeem_authorization_code("code_1", "fam_1", now)
            .await
            .unwrap()
    );
    let used = gatehouse_core::AuthorizationCode {
        used_at: Some(now),
        family_id: Some("fam_1".into()),
        ..first
    };
    assert_eq!(
        s.authorization_code("code_1").await.unwrap(),
        Some(used.clone())
    );
    // A replay redeems nothing and keeps the first use's record.
    assert!(
        !s.redeem_authorization_code("code_1", "fam_2", now + 1)
            .await
            .unwrap()
    );
    assert_eq!(s.authorization_code("code_1").await.unwrap(), Some(used));
    assert!(
        !s.redeem_authorization_code("code_x", "fam_3", now)
            .await
            .unwrap()
    );
    assert_eq!(s.authorization_code("code_2").await.unwrap(), Some(plain));

    // Of concurrent redemptions of one code, exactly one wins, and its family is stored.
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let store = s.store.clone();
            tokio::spawn(async move {
                let family = format!("fam_race_{i}");
                let won = store
                    .redeem_authorization_code("code_2", &family, now + 2)
                    .await
                    .unwrap();
                won.then_some(family)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = s.authorization_code("code_2").await.unwrap().unwrap();
    assert_eq!(
        (stored.used_at, stored.family_id),
        (Some(now + 2), winners.pop())
    );
}

async fn consents_are_replaced_when_given_again_and_listed_by_client(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    for id in ["cli_a", "cli_b"] {
        s.insert_client(&client(id, &[])).await.unwrap();
    }
    assert_eq!(s.consent("usr_a", "cli_a").await.unwrap(), None);

    let to_b = consent("usr_a", "cli_b", "openid", 1_700_000_050);
    let to_a = consent("usr_a", "cli_a", "openid rates:read", 1_700_000_100);
    s.save_consent(&to_b).await.unwrap();
    s.save_consent(&to_a).await.unwrap();
    assert_eq!(s.consent("usr_a", "cli_a").await.unwrap(), Some(to_a));
    assert_eq!(s.consent("usr_b", "cli_a").await.unwrap(), None);

    // Given again, with more: the new one replaces the old.
    let wider = consent("usr_a", "cli_a", "openid rates:read fx:read", 1_700_000_200);
    s.save_consent(&wider).await.unwrap();
    assert_eq!(
        s.consent("usr_a", "cli_a").await.unwrap(),
        Some(wider.clone())
    );
    assert_eq!(s.consents_of("usr_a").await.unwrap(), [wider, to_b]);
    assert!(s.consents_of("usr_b").await.unwrap().is_empty());
}

/// A user's live session on `client_id` started from the browser session `browser`.
async fn signed_in_through(
    s: &TestStore,
    family_id: &str,
    user_id: &str,
    client_id: &str,
    browser: Option<&str>,
) {
    let fam = gatehouse_core::RefreshFamily {
        browser_session_id: browser.map(Into::into),
        ..family(family_id, user_id, client_id, LATER)
    };
    let first = token(&format!("{family_id}-t1"), family_id, LATER);
    assert!(
        s.create_family(&fam, &first, 0).await.unwrap(),
        "{family_id}"
    );
}

/// The families among `ids` that are revoked, and when.
async fn revoked(s: &TestStore, ids: &[&str]) -> Vec<(String, Option<i64>)> {
    let mut found = Vec::new();
    for id in ids {
        let f = s.family(id).await.unwrap().unwrap();
        found.push((f.id, f.revoked_at));
    }
    found
}

async fn ending_a_browser_session_ends_exactly_its_families(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    for id in ["cli_a", "cli_b"] {
        s.insert_client(&client(id, &[])).await.unwrap();
    }
    for (id, user_id) in [("bs_1", "usr_a"), ("bs_2", "usr_a"), ("bs_3", "usr_b")] {
        s.insert_browser_session(&browser_session(id, user_id, 1_700_000_000, LATER))
            .await
            .unwrap();
    }
    signed_in_through(&s, "fam_1", "usr_a", "cli_a", Some("bs_1")).await;
    signed_in_through(&s, "fam_2", "usr_a", "cli_b", Some("bs_1")).await;
    signed_in_through(&s, "fam_3", "usr_a", "cli_a", Some("bs_2")).await;
    signed_in_through(&s, "fam_4", "usr_a", "cli_a", None).await;
    signed_in_through(&s, "fam_5", "usr_b", "cli_a", Some("bs_3")).await;
    signed_in_through(&s, "fam_6", "usr_a", "cli_b", Some("bs_1")).await;
    // The family keeps where it came from, however it is loaded.
    assert_eq!(
        s.family("fam_1").await.unwrap().unwrap().browser_session_id,
        Some("bs_1".into())
    );
    assert_eq!(
        s.refresh_token("fam_1-t1").await.unwrap().unwrap().1,
        gatehouse_core::RefreshFamily {
            browser_session_id: Some("bs_1".into()),
            ..family("fam_1", "usr_a", "cli_a", LATER)
        }
    );
    // Already over: not ended again.
    done(
        &s,
        &[Write::RevokeSession {
            id: "fam_6".into(),
            now: 1_700_000_100,
            until: 1_700_001_000,
        }],
    )
    .await;
    let before = s.latest_change().await.unwrap();

    let now = 1_700_000_500;
    let end = |now| Write::EndBrowserSession {
        id: "bs_1".into(),
        now,
        until: 1_700_001_400,
    };
    assert_eq!(done(&s, &[end(now)]).await, 2);
    assert_eq!(
        s.browser_session("secret-of-bs_1")
            .await
            .unwrap()
            .unwrap()
            .ended_at,
        Some(now)
    );
    assert_eq!(
        revoked(&s, &["fam_1", "fam_2", "fam_3", "fam_4", "fam_5", "fam_6"]).await,
        [
            ("fam_1".into(), Some(now)),
            ("fam_2".into(), Some(now)),
            ("fam_3".into(), None),
            ("fam_4".into(), None),
            ("fam_5".into(), None),
            ("fam_6".into(), Some(1_700_000_100)),
        ]
    );
    let mut logged = entries(&changes_after(&s, before).await);
    logged.sort_by_key(|(kind, subject, until)| (kind.as_str(), subject.clone(), *until));
    assert_eq!(
        logged,
        [
            entry(ChangeKind::SessionRevoked, "fam_1", Some(1_700_001_400)),
            entry(ChangeKind::SessionRevoked, "fam_2", Some(1_700_001_400)),
        ]
    );
    // The other browser sessions live on.
    assert_eq!(
        s.browser_sessions_of("usr_a", now)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["bs_2"]
    );
    assert!(
        s.browser_session("secret-of-bs_3")
            .await
            .unwrap()
            .unwrap()
            .ended_at
            .is_none()
    );

    // Ending it again changes nothing and logs nothing; it keeps the first end's time.
    let before = s.latest_change().await.unwrap();
    assert_eq!(done(&s, &[end(now + 100)]).await, 0);
    assert_eq!(s.latest_change().await.unwrap(), before);
    assert_eq!(
        s.browser_session("secret-of-bs_1")
            .await
            .unwrap()
            .unwrap()
            .ended_at,
        Some(now)
    );

    // A family started from it late (a code redeemed as it ended) ends when it is ended again.
    signed_in_through(&s, "fam_7", "usr_a", "cli_a", Some("bs_1")).await;
    assert_eq!(done(&s, &[end(now + 200)]).await, 1);
    assert_eq!(
        revoked(&s, &["fam_1", "fam_7"]).await,
        [
            ("fam_1".into(), Some(now)),
            ("fam_7".into(), Some(now + 200))
        ]
    );
    assert_eq!(
        entries(&changes_after(&s, before).await),
        [entry(
            ChangeKind::SessionRevoked,
            "fam_7",
            Some(1_700_001_400)
        )]
    );
}

async fn revoking_a_consent_ends_only_that_clients_sessions_of_that_user(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    for id in ["cli_a", "cli_b"] {
        s.insert_client(&client(id, &[])).await.unwrap();
    }
    for (user_id, client_id) in [("usr_a", "cli_a"), ("usr_a", "cli_b"), ("usr_b", "cli_a")] {
        s.save_consent(&consent(user_id, client_id, "openid", 1_700_000_000))
            .await
            .unwrap();
    }
    signed_in_through(&s, "fam_1", "usr_a", "cli_a", Some("bs_1")).await;
    signed_in_through(&s, "fam_2", "usr_a", "cli_a", None).await;
    signed_in_through(&s, "fam_3", "usr_a", "cli_b", Some("bs_1")).await;
    signed_in_through(&s, "fam_4", "usr_b", "cli_a", None).await;
    let before = s.latest_change().await.unwrap();

    let now = 1_700_000_500;
    let withdraw = |user_id: &str, client_id: &str| Write::RevokeConsent {
        user_id: user_id.into(),
        client_id: client_id.into(),
        now,
        until: 1_700_001_400,
    };
    assert_eq!(done(&s, &[withdraw("usr_a", "cli_a")]).await, 2);
    assert_eq!(s.consent("usr_a", "cli_a").await.unwrap(), None);
    assert_eq!(
        s.consents_of("usr_a").await.unwrap(),
        [consent("usr_a", "cli_b", "openid", 1_700_000_000)]
    );
    assert!(s.consent("usr_b", "cli_a").await.unwrap().is_some());
    assert_eq!(
        revoked(&s, &["fam_1", "fam_2", "fam_3", "fam_4"]).await,
        [
            ("fam_1".into(), Some(now)),
            ("fam_2".into(), Some(now)),
            ("fam_3".into(), None),
            ("fam_4".into(), None),
        ]
    );
    let mut logged = entries(&changes_after(&s, before).await);
    logged.sort_by_key(|(kind, subject, until)| (kind.as_str(), subject.clone(), *until));
    assert_eq!(
        logged,
        [
            entry(ChangeKind::SessionRevoked, "fam_1", Some(1_700_001_400)),
            entry(ChangeKind::SessionRevoked, "fam_2", Some(1_700_001_400)),
        ]
    );

    // Withdrawn again: nothing to do, nothing logged.
    let before = s.latest_change().await.unwrap();
    assert_eq!(done(&s, &[withdraw("usr_a", "cli_a")]).await, 0);
    assert_eq!(s.latest_change().await.unwrap(), before);

    // A consent with no sessions goes all the same, logging nothing.
    assert_eq!(done(&s, &[withdraw("usr_b", "cli_b")]).await, 0);
    s.save_consent(&consent("usr_b", "cli_b", "openid", 1_700_000_000))
        .await
        .unwrap();
    assert_eq!(done(&s, &[withdraw("usr_b", "cli_b")]).await, 0);
    assert_eq!(s.consent("usr_b", "cli_b").await.unwrap(), None);
    assert_eq!(s.latest_change().await.unwrap(), before);
}

async fn purge_deletes_expired_codes_and_expired_or_ended_browser_sessions(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_client(&client("cli_a", &[])).await.unwrap();
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    let now = 1_700_050_000;
    for (hash, expires_at) in [
        ("code_old", now - 1),
        ("code_now", now),
        ("code_live", LATER),
    ] {
        s.insert_authorization_code(&code(hash, "cli_a", "usr_a", expires_at))
            .await
            .unwrap();
    }
    // (id, expires_at, ended_at)
    for (id, expires_at, ended_at) in [
        ("bs_expired", now - 1, None),
        ("bs_ended", LATER, Some(now - 1)),
        ("bs_ends_now", LATER, Some(now)),
        ("bs_expires_now", now, None),
        ("bs_live", LATER, None),
    ] {
        let b = gatehouse_core::BrowserSession {
            ended_at,
            ..browser_session(id, "usr_a", 1_700_000_000, expires_at)
        };
        s.insert_browser_session(&b).await.unwrap();
    }
    // A live family started from a browser session that goes.
    signed_in_through(&s, "fam_1", "usr_a", "cli_a", Some("bs_ended")).await;

    // Two browser sessions and a code; nothing else had expired or been logged.
    assert_eq!(s.purge_expired(now, None).await.unwrap(), 3);
    assert_eq!(s.authorization_code("code_old").await.unwrap(), None);
    for hash in ["code_now", "code_live"] {
        assert!(
            s.authorization_code(hash).await.unwrap().is_some(),
            "{hash}"
        );
    }
    for (id, kept) in [
        ("bs_expired", false),
        ("bs_ended", false),
        ("bs_ends_now", true),
        ("bs_expires_now", true),
        ("bs_live", true),
    ] {
        let found = s.browser_session(&format!("secret-of-{id}")).await.unwrap();
        assert_eq!(found.is_some(), kept, "{id}");
    }
    let fam = s.family("fam_1").await.unwrap().unwrap();
    assert_eq!(
        (fam.browser_session_id.as_deref(), fam.revoked_at),
        (Some("bs_ended"), None)
    );
    assert!(s.refresh_token("fam_1-t1").await.unwrap().is_some());
    // Ending the purged one still finds the family.
    assert_eq!(
        done(
            &s,
            &[Write::EndBrowserSession {
                id: "bs_ended".into(),
                now,
                until: now + 900,
            }],
        )
        .await,
        1
    );

    // A second later, what was at its limit goes too.
    assert_eq!(s.purge_expired(now + 1, None).await.unwrap(), 3);
    assert_eq!(s.authorization_code("code_now").await.unwrap(), None);
    assert!(
        s.browser_session("secret-of-bs_live")
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.authorization_code("code_live").await.unwrap().is_some());
}

async fn deleting_a_user_or_client_takes_its_browser_sign_ins(backend: Backend) {
    let s = TestStore::open(backend).await;
    for (id, name) in [("usr_a", "alice"), ("usr_b", "bob")] {
        s.insert_user(&user(id, name, &["user"])).await.unwrap();
    }
    for id in ["cli_a", "cli_b"] {
        s.insert_client(&client(id, &[])).await.unwrap();
    }
    for (user_id, client_id, browser) in [("usr_a", "cli_a", "bs_a"), ("usr_b", "cli_b", "bs_b")] {
        s.insert_browser_session(&browser_session(browser, user_id, 1_700_000_000, LATER))
            .await
            .unwrap();
        s.insert_authorization_code(&code(&format!("code_{user_id}"), client_id, user_id, LATER))
            .await
            .unwrap();
        s.save_consent(&consent(user_id, client_id, "openid", 1_700_000_000))
            .await
            .unwrap();
    }
    s.save_consent(&consent("usr_b", "cli_a", "openid", 1_700_000_000))
        .await
        .unwrap();

    done(
        &s,
        &[Write::DeleteUser {
            id: "usr_a".into(),
            cutoff: 100,
        }],
    )
    .await;
    assert_eq!(s.browser_session("secret-of-bs_a").await.unwrap(), None);
    assert_eq!(s.authorization_code("code_usr_a").await.unwrap(), None);
    assert_eq!(s.consent("usr_a", "cli_a").await.unwrap(), None);
    assert!(s.browser_session("secret-of-bs_b").await.unwrap().is_some());
    assert!(s.authorization_code("code_usr_b").await.unwrap().is_some());
    assert_eq!(s.consents_of("usr_b").await.unwrap().len(), 2);

    // A client's codes and consents go with it; the people's browser sessions stay.
    done(
        &s,
        &[Write::DeleteClient {
            id: "cli_b".into(),
            cutoff: 200,
        }],
    )
    .await;
    assert_eq!(s.authorization_code("code_usr_b").await.unwrap(), None);
    assert_eq!(
        s.consents_of("usr_b").await.unwrap(),
        [consent("usr_b", "cli_a", "openid", 1_700_000_000)]
    );
    assert!(s.browser_session("secret-of-bs_b").await.unwrap().is_some());
}

// --- audit ---

fn event(id: &str, at: i64, subject: &str, kind: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        at,
        kind: kind.into(),
        subject: Some(subject.into()),
        client_id: Some("cli_a".into()),
        actor: None,
        ip: Some("192.0.2.7".into()),
        detail: format!("{kind} of {subject}"),
    }
}

async fn audit_events_filter_and_page_newest_first(backend: Backend) {
    let s = TestStore::open(backend).await;
    let anonymous = AuditEvent {
        subject: None,
        client_id: None,
        actor: Some("usr_admin".into()),
        ip: None,
        ..event("evt_5", 400, "-", "admin.user.updated")
    };
    let recorded = [
        event("evt_1", 100, "alice", "user.signin"),
        event("evt_2", 200, "bob", "user.signin"),
        event("evt_3", 200, "alice", "admin.user.updated"),
        event("evt_4", 300, "alice", "user.signin"),
        anonymous,
    ];
    for e in &recorded {
        s.record_event(e).await.unwrap();
    }
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let list = async |filter: EventFilter, before: Option<(i64, &str)>, limit| {
        ids(s
            .list_events(&filter, before.map(|(at, id)| (at, id.to_owned())), limit)
            .await
            .unwrap())
    };

    let newest = s
        .list_events(&EventFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(newest[0], recorded[4]);
    assert_eq!(ids(newest), ["evt_5", "evt_4", "evt_3", "evt_2", "evt_1"]);
    let recent = s.recent_events(3).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.at).collect::<Vec<_>>(),
        [400, 300, 200]
    );

    let alice = || EventFilter {
        subject: Some("alice".into()),
        ..EventFilter::default()
    };
    assert_eq!(list(alice(), None, 10).await, ["evt_4", "evt_3", "evt_1"]);
    let signins = EventFilter {
        kind: Some("user.signin".into()),
        ..alice()
    };
    assert_eq!(list(signins, None, 10).await, ["evt_4", "evt_1"]);
    let window = EventFilter {
        since: Some(200),
        until: Some(300),
        ..EventFilter::default()
    };
    assert_eq!(list(window, None, 10).await, ["evt_4", "evt_3", "evt_2"]);

    // Pages follow the (at, id) cursor, through events that share a second.
    let all = EventFilter::default;
    assert_eq!(list(all(), None, 2).await, ["evt_5", "evt_4"]);
    assert_eq!(
        list(all(), Some((300, "evt_4")), 2).await,
        ["evt_3", "evt_2"]
    );
    assert_eq!(
        list(all(), Some((200, "evt_3")), 2).await,
        ["evt_2", "evt_1"]
    );
    assert_eq!(list(all(), Some((200, "evt_2")), 2).await, ["evt_1"]);
    assert!(list(all(), Some((100, "evt_1")), 2).await.is_empty());

    // A type alone, and with a window; the cursor and the window's end together.
    let kind = |kind: &str| EventFilter {
        kind: Some(kind.into()),
        ..EventFilter::default()
    };
    assert_eq!(
        list(kind("user.signin"), None, 10).await,
        ["evt_4", "evt_2", "evt_1"]
    );
    assert_eq!(
        list(kind("user.signin"), Some((300, "evt_4")), 10).await,
        ["evt_2", "evt_1"]
    );
    let early_signins = EventFilter {
        until: Some(200),
        ..kind("user.signin")
    };
    assert_eq!(list(early_signins, None, 10).await, ["evt_2", "evt_1"]);
    let window = || EventFilter {
        since: Some(100),
        until: Some(300),
        ..EventFilter::default()
    };
    assert_eq!(
        list(window(), Some((200, "evt_3")), 10).await,
        ["evt_2", "evt_1"]
    );
    assert_eq!(
        list(window(), Some((400, "evt_5")), 2).await,
        ["evt_4", "evt_3"]
    );
}

// --- signing keys ---

fn key(kid: &str, created_at: i64, sealed: &[u8]) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        sealed_private_key: sealed.to_vec(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at,
        activates_at: created_at + 60,
        retired_at: None,
    }
}

async fn signing_keys_keep_their_bytes_and_retire_others(backend: Backend) {
    let s = TestStore::open(backend).await;
    assert!(s.signing_keys().await.unwrap().is_empty());
    // Bytes that read as a number, and bytes no text encoding holds: both come back as given.
    let k1 = key("k1", 1_000, b"12345");
    let k2 = key("k2", 2_000, &[0, 255, 1, 0, 128, 10]);
    let k3 = key("k3", 3_000, &[7; 64]);

    let add = |key: &StoredKey, retire_others_at| Write::AddSigningKey {
        key: key.clone(),
        retire_others_at,
    };
    done(&s, &[add(&k1, None)]).await;
    assert_eq!(s.signing_keys().await.unwrap(), std::slice::from_ref(&k1));
    done(&s, &[add(&k2, Some(5_000))]).await;
    done(&s, &[add(&k3, Some(6_000))]).await;
    let retired = |k: &StoredKey, at| StoredKey {
        retired_at: Some(at),
        ..k.clone()
    };
    // A key already retiring keeps its time.
    assert_eq!(
        s.signing_keys().await.unwrap(),
        [retired(&k1, 5_000), retired(&k2, 6_000), k3.clone()]
    );
    assert_eq!(
        entries(&changes_after(&s, 0).await),
        [
            entry(ChangeKind::Keys, "k1", None),
            entry(ChangeKind::Keys, "k2", Some(5_000)),
            entry(ChangeKind::Keys, "k3", Some(6_000)),
        ]
    );

    let before = s.latest_change().await.unwrap();
    assert!(matches!(
        s.commit(&[add(&key("k3", 9_000, b"other"), None)]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.signing_keys().await.unwrap().len(), 3);
    assert_eq!(s.latest_change().await.unwrap(), before);
}

// --- migrations ---

async fn a_database_from_another_migration_history_is_refused(backend: Backend) {
    let s = TestStore::open(backend).await;
    s.insert_user(&user("usr_a", "alice", &["user"]))
        .await
        .unwrap();
    // As a database made by the history before it was consolidated looks: more versions (one
    // far past ours, so this history can grow).
    s.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 999, 'admin', success, checksum, 0 FROM _sqlx_migrations WHERE version = 1",
    )
    .await;
    let reopen = async || match gatehouse_store::SqlStore::connect(&s.url).await {
        Ok(_) => panic!("a foreign migration history was accepted"),
        Err(StoreError::Backend(message)) => message,
        Err(other) => panic!("unexpected error: {other}"),
    };
    let message = reopen().await;
    assert!(
        message.contains("different migration history") && message.contains("migration 999"),
        "{message}"
    );

    // And one whose first migration differs from ours.
    s.execute("DELETE FROM _sqlx_migrations WHERE version = 999")
        .await;
    s.execute(
        "UPDATE _sqlx_migrations \
         SET checksum = (SELECT checksum FROM _sqlx_migrations WHERE version = 2) \
         WHERE version = 1",
    )
    .await;
    let message = reopen().await;
    assert!(
        message.contains("different migration history")
            && message.contains("migration 1 was previously applied but has been modified"),
        "{message}"
    );
    // Refused before anything ran: the data is as it was.
    assert_eq!(
        s.user("usr_a").await.unwrap().map(|u| u.roles),
        Some(roles(&["user"]))
    );
}

/// SQLite enforces foreign keys (role holders, sessions) only on connections that turned them on:
/// every connection of the pool must have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_sqlite_connection_enforces_foreign_keys() {
    let s = TestStore::open(Backend::Sqlite).await;
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(s.pool().acquire().await.unwrap());
    }
    for conn in &mut connections {
        let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(on, 1);
    }
}
