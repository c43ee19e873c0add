//! The shapes that gave way when the server was tried from outside, sent again: every error
//! quotes at most a short prefix of what was sent (so a stock client can read it), names its
//! field, and the server goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::{TestServer, lamps_with_telecells, send};
use singularity::proto::{
    self, billing_client::BillingClient, faults_client::FaultsClient, lamps_client::LampsClient,
    telecells_client::TelecellsClient,
};
use tonic::Code;

/// 64 KiB of text: far more than any field may hold, and more than an error may echo.
fn huge() -> String {
    "Europe/".to_owned() + &"x".repeat(64 * 1024)
}

/// An error for `field` that does not carry the input back.
fn short_and_named(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    let message = status.message();
    assert!(message.contains(field), "{field}: {message}");
    assert!(
        message.len() < 300,
        "{field}: {} bytes echoed",
        message.len()
    );
}

#[tokio::test]
async fn errors_quote_a_short_prefix_of_what_was_sent() {
    let mut server = TestServer::start(20).await;
    let mut faults = FaultsClient::new(server.channel.clone());
    short_and_named(
        faults
            .daily_faults(proto::DailyFaultsRequest {
                date: "2026-11-28".into(),
                time_zone: huge(),
            })
            .await,
        "time_zone",
    );
    short_and_named(
        faults
            .daily_faults(proto::DailyFaultsRequest {
                date: huge(),
                time_zone: "Europe/London".into(),
            })
            .await,
        "date",
    );
    let mut billing = BillingClient::new(server.channel.clone());
    for (from, to, field) in [
        (huge(), "2026-11-02".to_owned(), "from"),
        ("2026-11-01".to_owned(), huge(), "to"),
    ] {
        short_and_named(
            billing
                .get_totals(proto::GetTotalsRequest {
                    from,
                    to,
                    ..Default::default()
                })
                .await,
            field,
        );
    }
    let tariff =
        |valid_from: String, valid_to: String, starts_at: String| proto::SetTariffRequest {
            tariff: Some(proto::Tariff {
                name: "Night".into(),
                time_zone: "Europe/London".into(),
                valid_from,
                valid_to,
                bands: vec![proto::TariffBand {
                    name: "all".into(),
                    starts_at,
                    price_millipence_per_kwh: 20_000,
                }],
                ..Default::default()
            }),
        };
    let day = || "2030-01-01".to_owned();
    for (request, field) in [
        (tariff(huge(), String::new(), "00:00".into()), "valid_from"),
        (tariff(day(), huge(), "00:00".into()), "valid_to"),
        (tariff(day(), String::new(), huge()), "starts_at"),
    ] {
        short_and_named(billing.set_tariff(request).await, field);
    }
    short_and_named(
        TelecellsClient::new(server.channel.clone())
            .create(proto::CreateTelecellRequest {
                basestation_id: 1,
                uuid: huge(),
                ..Default::default()
            })
            .await,
        "uuid",
    );

    // A report for a telecell the estate does not have: the rejection quotes a prefix of its
    // uuid, and the valid report beside it is stored and acknowledged.
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let good = common::earth_leakage(&uuid, lamp, chrono::Utc::now());
    let stranger = proto::TelecellReport {
        telecell_uuid: "f".repeat(25 * 1024),
        ..good.clone()
    };
    let ack = send(&server, vec![stranger.clone(), good.clone()]).await;
    assert_eq!((ack.stored, ack.rejected), (1, 1));
    assert!(
        ack.rejections[0].reason.len() < 300,
        "{}",
        ack.rejections[0].reason
    );
    // 150 of them (3.7 MiB) with the good one: the acknowledgement fits, lists 100 and counts
    // all, so a sender that resends the batch gets the same answer and can move on.
    let mut batch = vec![stranger; 150];
    batch.push(good);
    for _ in 0..2 {
        let ack = send(&server, batch.clone()).await;
        assert_eq!(ack.rejected, 150);
        assert_eq!(ack.rejections.len(), 100);
        assert!(ack.rejections.iter().all(|r| r.telecell_uuid.len() <= 64));
        assert_eq!(ack.stored + ack.duplicates, 1, "{ack:?}");
    }

    // And it still serves.
    let lamp = LampsClient::new(server.channel.clone())
        .get(proto::IdRequest { id: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lamp.id, 1);
    server.stop().await;
}

#[tokio::test]
async fn ranges_and_instants_outside_what_clients_can_read_are_refused_by_field() {
    let mut server = TestServer::start(20).await;
    let mut faults = FaultsClient::new(server.channel.clone());
    for date in ["9999-12-31", "26-1-1", "0000-01-01"] {
        let refused = faults
            .daily_faults(proto::DailyFaultsRequest {
                date: date.into(),
                time_zone: "Europe/London".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{date}");
        assert!(
            refused.message().starts_with("date:"),
            "{date}: {refused:?}"
        );
    }
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let future = BillingClient::new(server.channel.clone())
        .get_lamp_energy(proto::GetLampEnergyRequest {
            lamp_id: 1,
            date: tomorrow,
        })
        .await
        .unwrap_err();
    assert_eq!(future.code(), Code::InvalidArgument);
    assert!(future.message().starts_with("date:"), "{future:?}");
    let now = chrono::Utc::now();
    let inverted = proto::audit_client::AuditClient::new(server.channel.clone())
        .list(proto::ListAuditRequest {
            from: Some(singularity::wire::timestamp(now)),
            to: Some(singularity::wire::timestamp(
                now - chrono::Duration::hours(1),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(inverted.code(), Code::InvalidArgument);
    assert!(inverted.message().starts_with("to:"), "{inverted:?}");
    let mut lamps = LampsClient::new(server.channel.clone());
    let missing = lamps
        .watch_status(proto::WatchStatusRequest {
            lamp_ids: Vec::new(),
            zone_id: 9_999,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let negative = lamps
        .watch_status(proto::WatchStatusRequest {
            lamp_ids: Vec::new(),
            zone_id: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert!(negative.message().starts_with("zone_id"), "{negative:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_keeps_up_is_not_cut_by_a_full_ingest_commit() {
    let mut server = TestServer::start(2_600).await;
    let lamps = lamps_with_telecells(&server, 2_000).await;
    let mut watch = FaultsClient::new(server.channel.clone())
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Three commits of 2,000 reports, each raising or repeating a fault on every lamp: 6,000
    // events, 2,000 at a time.
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    let reader = tokio::spawn(async move {
        use futures::StreamExt;
        let mut seen = 0;
        while seen < 6_000 {
            match watch.next().await {
                Some(Ok(_)) => seen += 1,
                Some(Err(status)) => return Err(status),
                None => break,
            }
        }
        Ok(seen)
    });
    for round in 0..3 {
        let at = start + chrono::Duration::minutes(round);
        let reports = lamps
            .iter()
            .map(|(lamp, uuid)| common::earth_leakage(uuid, *lamp, at))
            .collect();
        assert_eq!(send(&server, reports).await.stored, 2_000);
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.map_err(|s| format!("cut: {s:?}")), Ok(6_000));
    server.stop().await;
}

/// A LoginRequest whose username is not UTF-8, as a raw client could send it.
#[derive(Clone, PartialEq, prost::Message)]
struct RawLogin {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
}

/// A request whose first field is a varint that never ends.
#[derive(Clone, PartialEq, prost::Message)]
struct RawBytes {
    #[prost(bytes = "vec", tag = "1")]
    junk: Vec<u8>,
}

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments_naming_the_field() {
    let mut server = TestServer::start(5).await;
    let mut grpc = tonic::client::Grpc::new(server.bare.clone());
    grpc.ready().await.unwrap();
    let refused = grpc
        .unary::<_, proto::LoginResponse, _>(
            tonic::Request::new(RawLogin {
                username: vec![0xff, 0xfe, 0x41],
            }),
            "/singularity.v1.Auth/Login".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("username"), "{refused:?}");
    // A token-guarded call: the same once the caller is admitted.
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.unwrap();
    // Field 1 of IdRequest is a varint; as length-delimited bytes it is the wrong wire type.
    let refused = grpc
        .unary::<_, proto::Lamp, _>(
            tonic::Request::new(RawBytes {
                junk: vec![0x80; 12],
            }),
            "/singularity.v1.Lamps/Get".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // It still serves.
    assert!(
        LampsClient::new(server.channel.clone())
            .get(proto::IdRequest { id: 1 })
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stored_text_too_long_to_list_is_refused_and_listings_stay_readable() {
    let mut server = TestServer::start(5).await;
    let mut billing = BillingClient::new(server.channel.clone());
    let refused = billing
        .set_tariff(proto::SetTariffRequest {
            tariff: Some(proto::Tariff {
                name: "Long band".into(),
                time_zone: "Europe/London".into(),
                valid_from: "2030-01-01".into(),
                bands: vec![proto::TariffBand {
                    name: "n".repeat(2_500_000),
                    starts_at: "00:00".into(),
                    price_millipence_per_kwh: 20_000,
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("tariff.bands[0].name"),
        "{refused:?}"
    );
    billing
        .list_tariffs(proto::ListTariffsRequest::default())
        .await
        .unwrap();
    server.stop().await;
}

/// Whether the server closed this connection (a read ends or fails) within `wait`.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    // The server speaks first (its HTTP/2 settings): read past that to the end.
    let until_closed = async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, until_closed).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_speak_are_closed_and_capped() {
    let mut config = common::config();
    config.limits.connections = singularity::server::ConnectionLimits {
        handshake: std::time::Duration::from_secs(1),
        per_address: 8,
        total: 100,
    };
    let mut server = TestServer::start_with(5, config).await;
    // The test's own client holds one connection; seven silent ones fill the address's cap.
    let mut silent = Vec::new();
    for _ in 0..7 {
        silent.push(
            tokio::net::TcpStream::connect(server.address)
                .await
                .unwrap(),
        );
    }
    // The ninth is closed at once, before its deadline.
    let mut over = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    assert!(
        closed_within(&mut over, std::time::Duration::from_millis(500)).await,
        "a connection past the cap is closed at once"
    );
    // The silent ones are closed once the handshake deadline passes.
    for stream in &mut silent {
        assert!(closed_within(stream, std::time::Duration::from_secs(5)).await);
    }
    // Their places are free again: a new client gets in, and the old one still works.
    let fresh = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let fresh = singularity::link::with_token(fresh, Some(&server.token)).unwrap();
    assert!(
        LampsClient::new(fresh)
            .get(proto::IdRequest { id: 1 })
            .await
            .is_ok()
    );
    assert!(
        LampsClient::new(server.channel.clone())
            .get(proto::IdRequest { id: 1 })
            .await
            .is_ok()
    );
    server.stop().await;
}

/// Every text field a client can send, oversized: each is refused by name with a short
/// message, nothing is stored, and the server goes on serving.
#[tokio::test]
async fn battery_every_text_field_refuses_oversized_input_by_name() {
    use proto::{
        assets_client::AssetsClient, audit_client::AuditClient, auth_client::AuthClient,
        basestations_client::BasestationsClient, catalog_client::CatalogClient,
        users_client::UsersClient,
    };
    let mut server = TestServer::start(20).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    send(
        &server,
        vec![common::earth_leakage(&uuid, lamp, chrono::Utc::now())],
    )
    .await;
    let fault = FaultsClient::new(server.channel.clone())
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0);
    let long = || "x".repeat(64 * 1024);
    let channel = server.channel.clone();
    let mut basestations = BasestationsClient::new(channel.clone());
    let mut telecells = TelecellsClient::new(channel.clone());
    let mut assets = AssetsClient::new(channel.clone());
    let mut lamps = LampsClient::new(channel.clone());
    let mut users = UsersClient::new(channel.clone());
    let mut faults = FaultsClient::new(channel.clone());
    let mut billing = BillingClient::new(channel.clone());
    let mut audit = AuditClient::new(channel.clone());
    let mut catalog = CatalogClient::new(channel.clone());
    let mut auth = AuthClient::new(channel.clone());
    let mut anonymous = AuthClient::new(server.bare.clone());
    let audit_before = audit
        .list(proto::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .map_or(0, |page| page.items.len());

    let listing = |page_token: String| proto::ListOptions {
        page_token,
        ..Default::default()
    };
    let cases: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "uuid",
            basestations
                .create(proto::CreateBasestationRequest {
                    uuid: long(),
                    name: "b".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "name",
            basestations
                .create(proto::CreateBasestationRequest {
                    name: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "firmware_version",
            basestations
                .create(proto::CreateBasestationRequest {
                    name: "b".into(),
                    firmware_version: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "name",
            basestations
                .update(proto::UpdateBasestationRequest {
                    id: 1,
                    name: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "firmware_version",
            telecells
                .update(proto::UpdateTelecellRequest {
                    id: 1,
                    firmware_version: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reference",
            assets
                .create(proto::CreateAssetRequest {
                    reference: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reference",
            assets
                .update(proto::UpdateAssetRequest {
                    id: 1,
                    reference: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reference",
            lamps
                .create(proto::CreateLampRequest {
                    reference: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reference",
            lamps
                .update(proto::UpdateLampRequest {
                    id: 1,
                    reference: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "username",
            users
                .create(proto::CreateUserRequest {
                    username: long(),
                    password: "a long enough password".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "display_name",
            users
                .create(proto::CreateUserRequest {
                    username: "someone".into(),
                    display_name: long(),
                    password: "a long enough password".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "password",
            users
                .create(proto::CreateUserRequest {
                    username: "someone".into(),
                    password: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "display_name",
            users
                .update(proto::UpdateUserRequest {
                    id: 1,
                    display_name: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "password",
            users
                .update(proto::UpdateUserRequest {
                    id: 1,
                    password: Some(long()),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "username",
            anonymous
                .login(proto::LoginRequest {
                    username: long(),
                    password: "x".into(),
                })
                .await
                .map(drop),
        ),
        (
            "password",
            anonymous
                .login(proto::LoginRequest {
                    username: "admin".into(),
                    password: long(),
                })
                .await
                .map(drop),
        ),
        (
            "current_password",
            auth.change_password(proto::ChangePasswordRequest {
                current_password: long(),
                new_password: "a long enough password".into(),
            })
            .await
            .map(drop),
        ),
        (
            "new_password",
            auth.change_password(proto::ChangePasswordRequest {
                current_password: "whatever it is".into(),
                new_password: long(),
            })
            .await
            .map(drop),
        ),
        (
            "actor",
            audit
                .list(proto::ListAuditRequest {
                    actor: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "entity",
            audit
                .list(proto::ListAuditRequest {
                    entity: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "note",
            faults
                .acknowledge(proto::FaultActionRequest {
                    fault_id: fault.id,
                    expected_version: fault.version,
                    note: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "note",
            faults
                .add_note(proto::FaultActionRequest {
                    fault_id: fault.id,
                    note: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "assignee",
            faults
                .assign(proto::AssignFaultRequest {
                    fault_id: fault.id,
                    expected_version: fault.version,
                    assignee: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "note",
            faults
                .assign(proto::AssignFaultRequest {
                    fault_id: fault.id,
                    expected_version: fault.version,
                    assignee: "crew-north".into(),
                    note: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "page_token",
            faults
                .list(proto::ListFaultsRequest {
                    page_token: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "time_zone",
            billing
                .get_totals(proto::GetTotalsRequest {
                    from: "2026-11-01".into(),
                    to: "2026-11-02".into(),
                    time_zone: long(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "date",
            billing
                .get_lamp_energy(proto::GetLampEnergyRequest {
                    lamp_id: lamp,
                    date: long(),
                })
                .await
                .map(drop),
        ),
        (
            "tariff.name",
            billing
                .set_tariff(proto::SetTariffRequest {
                    tariff: Some(proto::Tariff {
                        name: long(),
                        time_zone: "Europe/London".into(),
                        valid_from: "2030-01-01".into(),
                        bands: vec![proto::TariffBand {
                            name: "all".into(),
                            starts_at: "00:00".into(),
                            price_millipence_per_kwh: 20_000,
                        }],
                        ..Default::default()
                    }),
                })
                .await
                .map(drop),
        ),
        (
            "time_zone",
            billing
                .set_tariff(proto::SetTariffRequest {
                    tariff: Some(proto::Tariff {
                        name: "Night".into(),
                        time_zone: long(),
                        valid_from: "2030-01-01".into(),
                        ..Default::default()
                    }),
                })
                .await
                .map(drop),
        ),
        (
            "page_token",
            billing
                .list_tariffs(proto::ListTariffsRequest { page_token: long() })
                .await
                .map(drop),
        ),
        (
            "page_token",
            catalog
                .list_circuits(proto::ListCircuitsRequest {
                    zone_id: 0,
                    page_token: long(),
                })
                .await
                .map(drop),
        ),
        ("page_token", lamps.list(listing(long())).await.map(drop)),
        (
            "page_token",
            basestations.list(listing(long())).await.map(drop),
        ),
    ];
    for (field, result) in cases {
        short_and_named(result, field);
    }
    // Nothing refused left a trace: no record, no audit entry.
    let audit_after = audit
        .list(proto::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .map_or(0, |page| page.items.len());
    assert_eq!(audit_before, audit_after);
    let basestation_count = basestations
        .list(proto::ListOptions::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .map_or(0, |page| page.items.len());
    assert!(basestation_count > 0);
    assert!(lamps.get(proto::IdRequest { id: 1 }).await.is_ok());
    server.stop().await;
}

/// A server whose message limit is 64 KiB: every listing still arrives whole, in pages that
/// fit, however long what was stored.
#[tokio::test]
async fn listings_page_by_size_so_no_reply_exceeds_the_message_limit() {
    let mut config = common::config();
    config.limits.max_message_bytes = 64 * 1024;
    let mut server = TestServer::start_with(1_000, config).await;
    let channel = server.channel.clone();

    // 1,000 lamps in pages of up to 1,000: more than 64 KiB, so cut by size.
    let mut lamps = LampsClient::new(channel.clone())
        .list(proto::ListOptions {
            page_size: Some(1_000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut pages, mut listed) = (0, 0);
    while let Some(page) = lamps.message().await.unwrap() {
        pages += 1;
        listed += page.items.len();
    }
    assert_eq!(listed, 1_000);
    assert!(pages > 1, "{pages} page");

    // 40 tariffs of 48 long-named bands (about 4 KiB each): paged, all listed in id order.
    let mut billing = BillingClient::new(channel.clone());
    for year in 0..40 {
        let bands = (0..48)
            .map(|slot| proto::TariffBand {
                name: format!("{slot:02}-{}", "b".repeat(60)),
                starts_at: format!("{:02}:{:02}", slot / 2, (slot % 2) * 30),
                price_millipence_per_kwh: 20_000 + slot,
            })
            .collect();
        billing
            .set_tariff(proto::SetTariffRequest {
                tariff: Some(proto::Tariff {
                    name: format!("Year {year}"),
                    time_zone: "Europe/London".into(),
                    valid_from: format!("{}-01-01", 2030 + year),
                    valid_to: format!("{}-12-31", 2030 + year),
                    bands,
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    let (mut tariffs, mut token, mut replies) = (Vec::new(), String::new(), 0);
    loop {
        let reply = billing
            .list_tariffs(proto::ListTariffsRequest { page_token: token })
            .await
            .unwrap()
            .into_inner();
        replies += 1;
        tariffs.extend(reply.tariffs.into_iter().map(|t| t.id));
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    assert!(replies > 1, "{replies} reply");
    assert!(tariffs.len() >= 40, "{}", tariffs.len());
    assert!(tariffs.windows(2).all(|w| w[0] < w[1]), "{tariffs:?}");

    // The audit trail of those 40 (each entry carries the bands): one listing, several pages.
    let mut audit = proto::audit_client::AuditClient::new(channel.clone())
        .list(proto::ListAuditRequest {
            entity: "tariff".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut pages, mut entries) = (0, 0);
    while let Some(page) = audit.message().await.unwrap() {
        pages += 1;
        entries += page.items.len();
    }
    assert_eq!(entries, 40);
    assert!(pages > 1, "{pages} page");

    // A fault with 60 notes of 2,000 characters: its detail keeps the newest that fit and
    // says how many older ones it left out.
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    send(
        &server,
        vec![common::earth_leakage(&uuid, lamp, chrono::Utc::now())],
    )
    .await;
    let mut faults = FaultsClient::new(channel.clone());
    let fault = faults
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0);
    for n in 0..60 {
        faults
            .add_note(proto::FaultActionRequest {
                fault_id: fault.id,
                note: format!("{n:02} {}", "n".repeat(1_990)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let detail = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner();
    assert!(detail.history_omitted > 0);
    // RAISED plus 60 notes, in all.
    assert_eq!(detail.history.len() as u64 + detail.history_omitted, 61);
    assert!(detail.history.last().unwrap().note.starts_with("59 "));
    server.stop().await;
}

#[tokio::test]
async fn reports_older_than_the_kept_window_or_with_impossible_counters_are_refused() {
    // The server's default: 48 h of readings.
    let mut server = TestServer::start_with(20, singularity::server::ServerConfig::default()).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let now = chrono::Utc::now();
    let old = common::earth_leakage(&uuid, lamp, now - chrono::Duration::hours(49));
    let ack = send(&server, vec![old]).await;
    assert_eq!((ack.stored, ack.rejected), (0, 1));
    assert!(
        ack.rejections[0].reason.starts_with("at:"),
        "{:?}",
        ack.rejections[0]
    );
    // The lamp's status was left alone.
    let status = LampsClient::new(server.channel.clone())
        .get_status(proto::IdRequest { id: lamp })
        .await;
    assert!(status.unwrap().into_inner().last_heard.is_none());

    let at = |minutes: i64| now - chrono::Duration::minutes(minutes);
    let first = common::earth_leakage(&uuid, lamp, at(30));
    // 15 minutes at the 4 kW ceiling is 1,000 Wh; a counter 50,000 Wh higher is impossible.
    let jump = proto::TelecellReport {
        energy_wh: first.energy_wh + 50_000,
        ..common::earth_leakage(&uuid, lamp, at(15))
    };
    let lifetime = proto::TelecellReport {
        energy_wh: 3_000_000_000,
        ..common::earth_leakage(&uuid, lamp, at(10))
    };
    let ack = send(&server, vec![first, jump, lifetime]).await;
    assert_eq!((ack.stored, ack.rejected), (1, 2), "{ack:?}");
    assert!(
        ack.rejections
            .iter()
            .all(|r| r.reason.starts_with("energy_wh:")),
        "{ack:?}"
    );
    server.stop().await;
}
