//! Who may do what, over real sockets: every RPC refuses a missing or expired token, each
//! role meets exactly the mutations api.md gives it, sessions end on logout, password change
//! and deletion, brute force is held off, text is stored verbatim, and every mutation is in
//! the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::str::FromStr;

use common::{TestServer, session_for};
use futures::StreamExt;
use prost::Message;
use singularity::domain::auth::token_hash;
use singularity::domain::inventory::{EntityStatus, NewUser, Role};
use singularity::link::{AuthedChannel, with_token};
use singularity::proto::{
    self, assets_client::AssetsClient, audit_client::AuditClient, auth_client::AuthClient,
    basestations_client::BasestationsClient, billing_client::BillingClient,
    faults_client::FaultsClient, users_client::UsersClient,
};
use tonic::Code;
use tonic::transport::Channel;

/// Every method of every `singularity.v1` service, as `/singularity.v1.Service/Method`.
fn every_rpc() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut paths = Vec::new();
    for file in set.file {
        for service in file.service {
            for method in &service.method {
                paths.push(format!(
                    "/singularity.v1.{}/{}",
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    paths.sort();
    paths
}

/// Calls `path` with an empty message; the gate answers before any handler decodes it.
async fn call<T>(channel: T, path: &str) -> Result<(), tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.into().to_string()))?;
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(tonic::Request::new(()), path, codec)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn every_rpc_but_login_refuses_a_missing_an_unknown_and_an_expired_token() {
    let mut server = TestServer::start(20).await;
    let rpcs = every_rpc();
    assert!(rpcs.len() >= 60, "{} rpcs", rpcs.len());
    // A session that ended an hour ago.
    let (admin, _) = server
        .store
        .credentials(common::TEST_ADMIN)
        .unwrap()
        .unwrap();
    let expired = "sgt_expired-session-token";
    server
        .store
        .open_session(
            admin.id,
            token_hash(expired),
            chrono::Utc::now() - chrono::Duration::hours(1),
            usize::MAX,
        )
        .unwrap();
    let unknown = with_token(server.bare.clone(), Some("sgt_nobody")).unwrap();
    let stale = with_token(server.bare.clone(), Some(expired)).unwrap();
    for rpc in &rpcs {
        let anonymous = call(server.bare.clone(), rpc).await;
        if rpc == "/singularity.v1.Auth/Login" {
            let status = anonymous.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{rpc}: {status:?}");
            assert!(status.message().starts_with("username"), "{status:?}");
            continue;
        }
        let status = anonymous.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert!(status.message().contains("Bearer"), "{rpc}: {status:?}");
        let status = call(unknown.clone(), rpc).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        let status = call(stale.clone(), rpc).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert!(status.message().contains("expired"), "{rpc}: {status:?}");
    }
    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.bare.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(serving.into_inner().status, 1);
    server.stop().await;
}

/// Each role-restricted RPC and the roles that may call it, written out by hand from api.md:
/// ADMIN everything, MANAGER triage + billing + tariffs, USER triage, DEV read-only + ingest.
fn expected_matrix() -> Vec<(&'static str, &'static [Role])> {
    use Role::{Admin, Dev, Manager, User};
    let mut matrix: Vec<(&'static str, &'static [Role])> = vec![
        ("Faults/Acknowledge", &[Admin, Manager, User]),
        ("Faults/Assign", &[Admin, Manager, User]),
        ("Faults/Resolve", &[Admin, Manager, User]),
        ("Faults/AddNote", &[Admin, Manager, User]),
        ("Billing/SetTariff", &[Admin, Manager]),
        ("Audit/List", &[Admin, Manager]),
        ("Telemetry/Report", &[Admin, Dev]),
        ("Users/Get", &[Admin]),
        ("Users/List", &[Admin]),
        ("Lamps/AddToAsset", &[Admin]),
        ("Telecells/AddToLamps", &[Admin]),
        ("Telecells/RemoveFromLamps", &[Admin]),
    ];
    for service in ["Assets", "Basestations", "Lamps", "Telecells", "Users"] {
        for verb in ["Create", "Update", "Delete", "Prune"] {
            let path: &'static str = Box::leak(format!("{service}/{verb}").into_boxed_str());
            matrix.push((path, &[Admin]));
        }
    }
    matrix
}

#[tokio::test]
async fn each_role_may_call_exactly_its_mutations() {
    let mut server = TestServer::start(20).await;
    let matrix = expected_matrix();
    // Every RPC that is not open to every signed-in user is in the matrix, so a new one
    // cannot slip in unchecked.
    let dev = server.as_role(Role::Dev);
    for rpc in every_rpc() {
        let short = rpc.trim_start_matches("/singularity.v1.");
        if matrix.iter().any(|(path, _)| *path == short) {
            continue;
        }
        let refused = matches!(
            call(dev.clone(), &rpc).await,
            Err(status) if status.code() == Code::PermissionDenied
        );
        assert!(
            !refused,
            "{short} is closed to dev but missing from the matrix"
        );
    }
    for role in Role::ALL {
        let channel = server.as_role(role);
        for (path, allowed) in &matrix {
            let outcome = call(channel.clone(), &format!("/singularity.v1.{path}")).await;
            let code = outcome.as_ref().err().map(tonic::Status::code);
            if allowed.contains(&role) {
                assert!(
                    !matches!(code, Some(Code::PermissionDenied | Code::Unauthenticated)),
                    "{} should reach {path}: {outcome:?}",
                    role.as_str()
                );
            } else {
                let status = outcome.unwrap_err();
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{} on {path}",
                    role.as_str()
                );
                assert!(status.message().contains(role.as_str()), "{status:?}");
            }
        }
    }
    server.stop().await;
}

/// A user with a real password, made through the store (argon2 is slow in debug builds:
/// one hash per test).
fn user_with_password(server: &TestServer, name: &str, role: Role, password: &str) -> i64 {
    server
        .store
        .create_user(NewUser {
            username: name.to_owned(),
            display_name: name.to_owned(),
            role,
            password_hash: singularity::passwords::hash(password).unwrap(),
            status: EntityStatus::Active,
        })
        .unwrap()
        .id
}

async fn login(server: &TestServer, name: &str, password: &str) -> Result<String, tonic::Status> {
    AuthClient::new(server.bare.clone())
        .login(proto::LoginRequest {
            username: name.to_owned(),
            password: password.to_owned(),
        })
        .await
        .map(|r| r.into_inner().token)
}

async fn whoami(channel: AuthedChannel) -> Result<String, tonic::Status> {
    AuthClient::new(channel)
        .who_am_i(proto::WhoAmIRequest {})
        .await
        .map(|r| r.into_inner().user.unwrap().username)
}

#[tokio::test]
async fn sessions_end_on_logout_on_a_new_password_and_when_the_user_is_deleted() {
    let mut server = TestServer::start(5).await;
    let id = user_with_password(&server, "mo", Role::User, "first-password");
    let signed_in = |token: &str| with_token(server.bare.clone(), Some(token)).unwrap();

    // Login gives a token that works, and the server keeps only its hash.
    let token = login(&server, "mo", "first-password").await.unwrap();
    assert!(token.starts_with("sgt_"));
    assert_eq!(whoami(signed_in(&token)).await.unwrap(), "mo");
    assert!(server.store.session(token.as_bytes()).unwrap().is_none());
    assert!(server.store.session(&token_hash(&token)).unwrap().is_some());
    // A new role applies to the open session at once.
    let trail = |token: &str| {
        let mut client = AuditClient::new(signed_in(token));
        async move { client.list(proto::ListAuditRequest::default()).await }
    };
    assert_eq!(
        trail(&token).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    UsersClient::new(server.channel.clone())
        .update(proto::UpdateUserRequest {
            id,
            role: proto::Role::Manager as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(trail(&token).await.is_ok(), "the promotion applies at once");
    // Logout ends it.
    AuthClient::new(signed_in(&token))
        .logout(proto::LogoutRequest {})
        .await
        .unwrap();
    assert_eq!(
        whoami(signed_in(&token)).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A new password (the admin setting it) ends every session.
    let (a, b) = (
        login(&server, "mo", "first-password").await.unwrap(),
        login(&server, "mo", "first-password").await.unwrap(),
    );
    let mut users = UsersClient::new(server.channel.clone());
    users
        .update(proto::UpdateUserRequest {
            id,
            password: Some("second-password".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    for token in [&a, &b] {
        assert_eq!(
            whoami(signed_in(token)).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }
    let said = audit(
        &server.channel,
        proto::ListAuditRequest {
            entity: "user".into(),
            entity_id: id,
            ..Default::default()
        },
    )
    .await;
    assert!(
        said[0]
            .changes
            .ends_with("password: set, every session ended"),
        "{said:?}"
    );
    assert!(!said.iter().any(|e| e.changes.contains("second-password")));
    // So does changing one's own, which needs the current password.
    let c = login(&server, "mo", "second-password").await.unwrap();
    let wrong = AuthClient::new(signed_in(&c))
        .change_password(proto::ChangePasswordRequest {
            current_password: "not-it".into(),
            new_password: "third-password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    let short = AuthClient::new(signed_in(&c))
        .change_password(proto::ChangePasswordRequest {
            current_password: "second-password".into(),
            new_password: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(short.message().starts_with("new_password"), "{short:?}");
    AuthClient::new(signed_in(&c))
        .change_password(proto::ChangePasswordRequest {
            current_password: "second-password".into(),
            new_password: "third-password".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        whoami(signed_in(&c)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        login(&server, "mo", "second-password")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Deleting the user ends their sessions and stops them signing in.
    let d = login(&server, "mo", "third-password").await.unwrap();
    users.delete(proto::IdRequest { id }).await.unwrap();
    assert_eq!(
        whoami(signed_in(&d)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let refused = login(&server, "mo", "third-password").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("not active"), "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn guessing_passwords_is_held_off_with_a_retry_hint() {
    let mut server = TestServer::start(5).await;
    user_with_password(&server, "target", Role::Admin, "the-real-password");
    // Five failures are allowed by default; the sixth attempt is refused unheard, even with
    // the right password.
    for attempt in 0..5 {
        let status = login(&server, "target", &format!("guess-{attempt}"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "attempt {attempt}");
        assert_eq!(status.message(), "wrong username or password");
    }
    let held = login(&server, "target", "the-real-password")
        .await
        .unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted, "{held:?}");
    let retry: u64 = held
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // An unknown name fails the same way as a wrong password.
    let unknown = login(&server, "nobody-here", "whatever").await.unwrap_err();
    assert_eq!(unknown.message(), "wrong username or password");
    server.stop().await;
}

/// Wrong sign-ins all at once, over several connections: how many had their password checked
/// (answered UNAUTHENTICATED) and how many were held off unheard.
async fn at_once(server: &TestServer, names: Vec<String>) -> (usize, usize) {
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(
            tonic::transport::Channel::from_shared(server.url())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let attempts: Vec<_> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let channel = connections[i % connections.len()].clone();
            tokio::spawn(async move {
                AuthClient::new(channel)
                    .login(proto::LoginRequest {
                        username: name,
                        password: format!("guess-{i}"),
                    })
                    .await
            })
        })
        .collect();
    let (mut checked, mut held) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap().unwrap_err().code() {
            Code::Unauthenticated => checked += 1,
            Code::ResourceExhausted => held += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (checked, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_sign_ins_at_once_check_no_more_passwords_than_the_limit() {
    let mut server = TestServer::start(5).await;
    user_with_password(&server, "target", Role::User, "the-real-password");
    let (checked, held) = at_once(&server, vec!["target".to_owned(); 60]).await;
    assert_eq!((checked, held), (5, 55), "per user: 5");
    // Unknown names from one address: the per-address limit (20), less the 5 already used.
    let names = (0..120).map(|i| format!("nobody-{i}")).collect();
    let (checked, held) = at_once(&server, names).await;
    assert_eq!((checked, held), (15, 105), "per address: 20 in all");
    server.stop().await;
}

#[tokio::test]
async fn signing_in_past_the_session_cap_ends_the_oldest_session() {
    let mut config = common::config();
    config.limits.sessions_per_user = 3;
    let mut server = TestServer::start_with(5, config).await;
    user_with_password(&server, "busy", Role::User, "the-real-password");
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(login(&server, "busy", "the-real-password").await.unwrap());
    }
    let mut alive = Vec::new();
    for token in &tokens {
        let channel = with_token(server.bare.clone(), Some(token)).unwrap();
        alive.push(whoami(channel).await.is_ok());
    }
    assert_eq!(
        alive,
        vec![false, false, true, true, true],
        "the newest 3 live"
    );
    server.stop().await;
}

const NASTY: &str = "Robert'); DROP TABLE lamps;-- \" OR 1=1 /* ü 🔥 */ \\x00";

#[tokio::test]
async fn sql_shaped_text_is_stored_and_returned_verbatim_and_audited() {
    let mut server = TestServer::start(20).await;
    let admin = server.channel.clone();
    let mut stations = BasestationsClient::new(admin.clone());
    let station = stations
        .create(proto::CreateBasestationRequest {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: NASTY.into(),
            firmware_version: NASTY.into(),
            location: Some(proto::GeoPoint {
                lat: 51.5,
                lon: -0.1,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fetched = stations
        .get(proto::IdRequest { id: station.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (fetched.name.as_str(), fetched.firmware_version.as_str()),
        (NASTY, NASTY)
    );

    let mut assets = AssetsClient::new(admin.clone());
    let asset = assets
        .list(proto::ListOptions {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0);
    let renamed = assets
        .update(proto::UpdateAssetRequest {
            id: asset.id,
            reference: Some(NASTY.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.reference, NASTY);

    let lamp = proto::lamps_client::LampsClient::new(admin.clone())
        .update(proto::UpdateLampRequest {
            id: 1,
            reference: Some(NASTY.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lamp.reference, NASTY);
    let telecell = proto::telecells_client::TelecellsClient::new(admin.clone())
        .update(proto::UpdateTelecellRequest {
            id: 1,
            firmware_version: Some(NASTY.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(telecell.firmware_version, NASTY);

    let mut users = UsersClient::new(admin.clone());
    let user = users
        .create(proto::CreateUserRequest {
            username: "quoted.user".into(),
            display_name: NASTY.into(),
            role: proto::Role::User as i32,
            password: "long-enough-password".into(),
            status: proto::EntityStatus::Active as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.display_name, NASTY);
    // A username is an identifier: such text is refused, naming the field.
    let refused = users
        .create(proto::CreateUserRequest {
            username: NASTY.into(),
            display_name: "x".into(),
            role: proto::Role::User as i32,
            password: "long-enough-password".into(),
            status: proto::EntityStatus::Active as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("username"), "{refused:?}");
    let login = AuthClient::new(server.bare.clone())
        .login(proto::LoginRequest {
            username: NASTY.into(),
            password: NASTY.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(login.code(), Code::Unauthenticated);

    let tariff = BillingClient::new(admin.clone())
        .set_tariff(proto::SetTariffRequest {
            tariff: Some(proto::Tariff {
                name: NASTY.into(),
                time_zone: "Europe/London".into(),
                valid_from: "2030-01-01".into(),
                bands: vec![proto::TariffBand {
                    name: NASTY.into(),
                    starts_at: "00:00".into(),
                    price_millipence_per_kwh: 20_000,
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (tariff.name.as_str(), tariff.bands[0].name.as_str()),
        (NASTY, NASTY)
    );

    // The tables are all still there, and the trail holds each change as it was made.
    let still = stations
        .list(proto::ListOptions::default())
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(!still.items.is_empty());
    let trail = audit(&admin, proto::ListAuditRequest::default()).await;
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "Billing.SetTariff",
            "Users.Create",
            "Telecells.Update",
            "Lamps.Update",
            "Assets.Update",
            "Basestations.Create"
        ],
        "newest first"
    );
    let asset_entry = &trail[4];
    assert_eq!(asset_entry.actor, common::TEST_ADMIN);
    assert_eq!(asset_entry.role, "admin");
    assert_eq!(asset_entry.entity, "asset");
    assert_eq!(asset_entry.entity_id, asset.id);
    assert!(
        asset_entry.peer.starts_with("127.0.0.1:"),
        "{asset_entry:?}"
    );
    assert!(
        asset_entry
            .changes
            .starts_with(&format!("reference: {:?} -> {:?}", asset.reference, NASTY)),
        "{}",
        asset_entry.changes
    );
    // Filters.
    let only_users = audit(
        &admin,
        proto::ListAuditRequest {
            entity: "user".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(only_users.len(), 1);
    assert!(only_users[0].changes.contains("display_name: -> "));
    assert!(!only_users[0].changes.contains("long-enough-password"));
    server.stop().await;
}

async fn audit(
    channel: &AuthedChannel,
    request: proto::ListAuditRequest,
) -> Vec<proto::AuditEntry> {
    let mut pages = AuditClient::new(channel.clone())
        .list(request)
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().items);
    }
    all
}

#[tokio::test]
async fn triage_is_recorded_as_the_signed_in_user_from_and_to() {
    let mut server = TestServer::start(40).await;
    let lamps = common::lamps_with_telecells(&server, 1).await;
    let (lamp, uuid) = (lamps[0].0, &lamps[0].1);
    common::send(
        &server,
        vec![proto::TelecellReport {
            telecell_uuid: uuid.clone(),
            lamp_id: lamp,
            at: Some(singularity::wire::timestamp(chrono::Utc::now())),
            voltage_v: 236.0,
            power_factor: 0.95,
            link_quality_pct: 90,
            temperature_c: 20.0,
            alarms: Some(proto::NodeAlarms {
                earth_leakage: true,
                ..Default::default()
            }),
            ..Default::default()
        }],
    )
    .await;
    let operator = server.as_role(Role::User);
    let mut faults = FaultsClient::new(operator);
    let fault = faults
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0);
    let acked = faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: fault.id,
            expected_version: fault.version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Free text in triage is kept verbatim too.
    let assigned = faults
        .assign(proto::AssignFaultRequest {
            fault_id: fault.id,
            expected_version: acked.version,
            assignee: NASTY.into(),
            note: NASTY.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(assigned.assignee, NASTY);
    let history = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner()
        .history;
    assert_eq!(history.last().unwrap().note, NASTY);
    let trail = audit(
        &server.channel,
        proto::ListAuditRequest {
            entity: "fault".into(),
            entity_id: fault.id,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(trail.len(), 2);
    assert!(trail.iter().all(|e| e.actor == "test-user"));
    assert_eq!(trail[1].action, "Faults.Acknowledge");
    assert!(
        trail[1].changes.contains("state: OPEN -> ACKNOWLEDGED"),
        "{}",
        trail[1].changes
    );
    assert_eq!(trail[0].action, "Faults.Assign");
    assert!(
        trail[0].changes.contains(&format!("{NASTY:?}")),
        "{}",
        trail[0].changes
    );
    // A dev account reads the board but may not read the trail.
    let refused = AuditClient::new(server.as_role(Role::Dev))
        .list(proto::ListAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn the_token_can_come_from_a_plain_channel_and_session_for_reuses_users() {
    let mut server = TestServer::start(5).await;
    let first = session_for(server.store.as_ref(), "twice", Role::Manager);
    let second = session_for(server.store.as_ref(), "twice", Role::Manager);
    assert_ne!(first, second, "each session has its own token");
    let bare: Channel = server.bare.clone();
    assert_eq!(
        whoami(with_token(bare, Some(&second)).unwrap())
            .await
            .unwrap(),
        "twice"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_before_it_is_read() {
    let config = singularity::server::ServerConfig {
        limits: singularity::server::Limits {
            max_message_bytes: 64 * 1024,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut server = TestServer::start_with(5, config).await;
    let status = BasestationsClient::new(server.channel.clone())
        .create(proto::CreateBasestationRequest {
            name: "x".repeat(100 * 1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // Under the limit, the same call is judged on its content.
    let status = BasestationsClient::new(server.channel.clone())
        .create(proto::CreateBasestationRequest {
            name: "x".repeat(1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn open_streams_end_with_their_session() {
    let mut server = TestServer::start(20).await;
    let watcher = session_for(server.store.as_ref(), "watcher", Role::User);
    let link = with_token(server.bare.clone(), Some(&watcher)).unwrap();
    let mut feed = FaultsClient::new(link.clone())
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Logging out (here from the same session) ends the open watch.
    AuthClient::new(link)
        .logout(proto::LogoutRequest {})
        .await
        .unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match feed.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the watch outlived its session")
    .expect("the watch ended without a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");

    // A session that runs out ends its watch at the expiry.
    let (user, _) = server.store.credentials("watcher").unwrap().unwrap();
    let brief = "sgt_brief-session";
    server
        .store
        .open_session(
            user.id,
            token_hash(brief),
            chrono::Utc::now() + chrono::Duration::milliseconds(1_500),
            usize::MAX,
        )
        .unwrap();
    let mut totals = BillingClient::new(with_token(server.bare.clone(), Some(brief)).unwrap())
        .watch_totals(proto::WatchTotalsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match totals.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status,
                None => panic!("ended without a status"),
            }
        }
    })
    .await
    .expect("the watch outlived its session");
    assert_eq!(ended.code(), Code::Unauthenticated);
    assert!(ended.message().contains("expired"), "{ended:?}");

    // An ingest stream ends when its user is deactivated.
    let field = session_for(server.store.as_ref(), "field", Role::Dev);
    let (sender, reports) = tokio::sync::mpsc::channel::<proto::TelecellReport>(4);
    let mut telemetry = proto::telemetry_client::TelemetryClient::new(
        with_token(server.bare.clone(), Some(&field)).unwrap(),
    );
    let call = tokio::spawn(async move {
        telemetry
            .report(tokio_stream::wrappers::ReceiverStream::new(reports))
            .await
    });
    sender.send(proto::TelecellReport::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (dev, _) = server.store.credentials("field").unwrap().unwrap();
    UsersClient::new(server.channel.clone())
        .update(proto::UpdateUserRequest {
            id: dev.id,
            status: proto::EntityStatus::Inactive as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), call)
        .await
        .expect("the ingest stream outlived its account")
        .unwrap();
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    drop(sender);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_holds_no_more_streams_than_the_limit() {
    let config = singularity::server::ServerConfig {
        limits: singularity::server::Limits {
            max_streams_per_connection: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut server = TestServer::start_with(5, config).await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let first = faults
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _second = faults
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // A third call on the same connection waits for a free stream.
    let mut lamps = proto::lamps_client::LampsClient::new(server.channel.clone());
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        lamps.get(proto::IdRequest { id: 1 }),
    )
    .await;
    assert!(waiting.is_err(), "a third stream was opened: {waiting:?}");
    drop(first);
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        lamps.get(proto::IdRequest { id: 1 }),
    )
    .await
    .expect("the call never got a stream");
    assert_eq!(served.unwrap().into_inner().id, 1);
    server.stop().await;
}

#[tokio::test]
async fn deadlines_are_honoured_the_servers_and_the_clients() {
    let config = singularity::server::ServerConfig {
        limits: singularity::server::Limits {
            request_timeout: std::time::Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut server = TestServer::start_with(5, config).await;
    // An ingest stream held open past the server's limit is cut off.
    let (sender, reports) = tokio::sync::mpsc::channel::<proto::TelecellReport>(4);
    let mut telemetry = proto::telemetry_client::TelemetryClient::new(server.channel.clone());
    let started = std::time::Instant::now();
    let outcome = telemetry
        .report(tokio_stream::wrappers::ReceiverStream::new(reports))
        .await;
    let status = outcome.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    drop(sender);
    // A client's own shorter deadline wins.
    let (_sender, reports) = tokio::sync::mpsc::channel::<proto::TelecellReport>(4);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(reports));
    request.set_timeout(std::time::Duration::from_millis(200));
    let status = telemetry.report(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    server.stop().await;
}
