//! What operations staff see of a running server, through real sockets: Prometheus metrics
//! scraped over HTTP (calls by method and code, reports stored, leadership), the request id
//! a call carries both ways, and processes serving only some parts of the API on one
//! PostgreSQL database (`--services`), each with health and reflection for what it serves.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, earth_leakage, lamps_with_telecells, send};
use singularity::domain::inventory::Role;
use singularity::link::with_token;
use singularity::proto::{
    self, billing_client::BillingClient, faults_client::FaultsClient, lamps_client::LampsClient,
    telemetry_client::TelemetryClient,
};
use singularity::server::Services;
use singularity::server::metrics::{Metrics, SharedMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Everything the metrics endpoint at `address` answers to a scrape.
async fn scrape(address: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    reply
}

/// The value of the metric line starting `series ` (0 when absent).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_scrape_counts_calls_by_code_reports_stored_and_leadership() {
    let metrics = Arc::new(Metrics::default());
    let mut config = common::config();
    config.metrics = SharedMetrics(metrics.clone());
    let mut server = TestServer::start_with(20, config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(singularity::server::metrics::serve(
        listener,
        metrics,
        stop.clone(),
    ));

    let mut lamps = LampsClient::new(server.channel.clone());
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    lamps.get(proto::IdRequest { id: lamp }).await.unwrap();
    lamps.get(proto::IdRequest { id: lamp }).await.unwrap();
    let missing = lamps
        .get(proto::IdRequest { id: 999_999 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let at: chrono::DateTime<chrono::Utc> = "2026-11-03T12:00:00Z".parse().unwrap();
    send(&server, vec![earth_leakage(&uuid, lamp, at)]).await;

    // The gauges are sampled every second; the call counts land as each reply ends.
    let began = Instant::now();
    let text = loop {
        let text = scrape(address).await;
        if value(&text, "singularity_leader") == 1.0 || began.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let get = r#"singularity_grpc_calls_total{service="Lamps",method="Get",code="#;
    assert_eq!(value(&text, &format!(r#"{get}"Ok"}}"#)), 2.0, "{text}");
    assert_eq!(
        value(&text, &format!(r#"{get}"NotFound"}}"#)),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "singularity_reports_stored_total"),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, "singularity_leader"), 1.0, "{text}");
    assert!(
        value(
            &text,
            r#"singularity_grpc_call_seconds_count{service="Lamps",method="Get"}"#
        ) >= 3.0,
        "{text}"
    );

    // A watcher is an open call until it goes.
    let watcher = FaultsClient::new(server.channel.clone())
        .watch(proto::WatchFaultsRequest {
            after_seq: 0,
            filter: None,
        })
        .await
        .unwrap();
    let open = r#"singularity_grpc_calls_open{service="Faults",method="Watch"}"#;
    assert_eq!(value(&scrape(address).await, open), 1.0);
    drop(watcher);
    let began = Instant::now();
    while value(&scrape(address).await, open) != 0.0 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the watcher never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    server.stop().await;
}

#[tokio::test]
async fn a_call_keeps_the_request_id_it_came_with_and_gets_one_otherwise() {
    let mut server = TestServer::start(5).await;
    let mut lamps = LampsClient::new(server.channel.clone());
    let mut request = tonic::Request::new(proto::IdRequest { id: 999_999 });
    request
        .metadata_mut()
        .insert("x-request-id", "gateway-7f3a".parse().unwrap());
    let refused = lamps.get(request).await.unwrap_err();
    assert_eq!(
        refused.metadata().get("x-request-id").unwrap(),
        "gateway-7f3a"
    );
    let lamp = lamps_with_telecells(&server, 1).await.remove(0).0;
    let answered = lamps.get(proto::IdRequest { id: lamp }).await.unwrap();
    let id = answered
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    server.stop().await;
}

async fn health(server: &TestServer, service: &str) -> Result<i32, Code> {
    HealthClient::new(server.bare.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

/// The services a server lists through reflection.
async fn reflected(server: &TestServer) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(server.bare.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    match reply.message_response.unwrap() {
        MessageResponse::ListServicesResponse(list) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("not a list of services: {other:?}"),
    }
}

const SERVING: Result<i32, Code> = Ok(1);

#[tokio::test]
async fn processes_serving_parts_of_the_api_share_one_database() {
    if std::env::var("SINGULARITY_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: needs the test PostgreSQL cluster (scripts/test starts one)");
        return;
    }
    // The field process's address is chosen first: the inventory processes ask it for
    // lamps' status.
    let field_address = format!("127.0.0.1:{}", common::free_port());
    let field_url = format!("http://{field_address}");
    let (mut inventory, url) = {
        let mut config = common::config();
        config.services = Services::parse("inventory,auth").unwrap();
        config.telemetry_urls = vec![field_url.clone()];
        config.faults_urls = vec![field_url.clone()];
        let url = common::fresh_postgres_database();
        let store = singularity::store::open_url(&url).unwrap();
        (
            TestServer::seeded_with(tempfile::tempdir().unwrap(), store, 20, config).await,
            url,
        )
    };
    // An inventory of its own for billing and telemetry to ask, so it can be stopped while
    // auth stays.
    let auth_url = inventory.url();
    let catalogue_config = || {
        let mut config = common::config();
        config.services = Services::parse("inventory").unwrap();
        config.auth_urls = vec![auth_url.clone()];
        config.telemetry_urls = vec![field_url.clone()];
        config.faults_urls = vec![field_url.clone()];
        config
    };
    let mut catalogue = TestServer::on_store_with(
        tempfile::tempdir().unwrap(),
        singularity::store::open_url(&url).unwrap(),
        catalogue_config(),
    )
    .await;
    let catalogue_url = catalogue.url();
    let field_config = |services: &str| {
        let mut config = common::config();
        config.services = Services::parse(services).unwrap();
        config.auth_urls = vec![auth_url.clone()];
        config.inventory_urls = vec![catalogue_url.clone()];
        let store = singularity::store::open_url(&url).unwrap();
        config.service_account = Some(common::service_account(store.as_ref()));
        (store, config)
    };
    // An account the auth service refuses stops the process at start, saying why.
    let (store, mut config) = field_config("telemetry,faults");
    if let Some(account) = config.service_account.as_mut() {
        account.password = Some("not-its-password".into());
    }
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        singularity::server::run(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            store,
            config,
            std::future::pending(),
        ),
    )
    .await
    .expect("started with an account the auth service refuses")
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("--service-user")
            && refused.contains("wrong username or password")
            && refused.contains("SINGULARITY_SERVICE_PASSWORD"),
        "{refused}"
    );
    let (store, config) = field_config("telemetry,faults,billing");
    let mut field =
        TestServer::on_address(tempfile::tempdir().unwrap(), store, config, &field_address).await;

    // Each serves its own parts, says so in health and reflection, and nothing else.
    let lamp = lamps_with_telecells(&inventory, 1).await.remove(0);
    let unserved = LampsClient::new(field.channel.clone())
        .get(proto::IdRequest { id: lamp.0 })
        .await
        .unwrap_err();
    assert_eq!(unserved.code(), Code::Unimplemented);
    let unserved = FaultsClient::new(inventory.channel.clone())
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unserved.code(), Code::Unimplemented);
    assert_eq!(health(&inventory, "singularity.v1.Lamps").await, SERVING);
    assert_eq!(health(&inventory, "singularity.v1.Users").await, SERVING);
    assert_eq!(
        health(&inventory, "singularity.v1.Faults").await,
        Err(Code::NotFound)
    );
    assert_eq!(health(&field, "singularity.v1.Faults").await, SERVING);
    assert_eq!(
        health(&field, "singularity.v1.Lamps").await,
        Err(Code::NotFound)
    );
    let names = reflected(&inventory).await;
    assert!(
        names.contains(&"singularity.v1.Lamps".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"singularity.v1.Faults".to_owned()),
        "{names:?}"
    );
    assert!(
        reflected(&field)
            .await
            .contains(&"singularity.v1.Telemetry".to_owned())
    );

    // Only the process serving telemetry leads; the other is ready without leading.
    let began = Instant::now();
    while health(&field, singularity::server::LEADER_HEALTH_SERVICE).await != SERVING {
        assert!(began.elapsed() < Duration::from_secs(15), "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health(&inventory, "").await, SERVING);
    assert_ne!(
        health(&inventory, singularity::server::LEADER_HEALTH_SERVICE).await,
        SERVING
    );

    // A report to the field process is judged there; its fault reads there.
    let at: chrono::DateTime<chrono::Utc> = "2026-11-03T12:00:00Z".parse().unwrap();
    send(&field, vec![earth_leakage(&lamp.1, lamp.0, at)]).await;
    let faults = common::first_message(
        FaultsClient::new(field.channel.clone())
            .list(proto::ListFaultsRequest::default())
            .await,
    )
    .await;
    assert!(
        faults.items.iter().any(|f| f.lamp_id == lamp.0),
        "{faults:?}"
    );

    // The inventory asks telemetry and faults for the lamp's status, and follows both.
    let mut lamps = LampsClient::new(inventory.channel.clone());
    let status = lamps
        .get_status(proto::IdRequest { id: lamp.0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.health(), proto::LampHealth::Fault, "{status:?}");
    assert_eq!(status.open_faults, 1, "{status:?}");
    assert_eq!(status.last_heard.unwrap().seconds, at.timestamp());
    let mut watching = lamps
        .watch_status(proto::WatchStatusRequest {
            lamp_ids: vec![lamp.0],
            zone_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = watching.message().await.unwrap().unwrap();
    assert_eq!(first.last_heard, status.last_heard);
    // What the inventory follows: the stored state first, marked as such, then each newer
    // report.
    let mut latest = TelemetryClient::new(field.channel.clone())
        .watch_latest(proto::LatestRequest {
            lamp_ids: vec![lamp.0, 987_654],
        })
        .await
        .unwrap()
        .into_inner();
    let stored = latest.message().await.unwrap().unwrap();
    assert!(stored.snapshot);
    assert_eq!(
        stored.reports.len(),
        1,
        "a lamp never heard from is left out"
    );
    assert_eq!(stored.reports[0].at.unwrap().seconds, at.timestamp());
    let heard = at + chrono::Duration::minutes(15);
    send(&field, vec![earth_leakage(&lamp.1, lamp.0, heard)]).await;
    let newer = latest.message().await.unwrap().unwrap();
    assert!(!newer.snapshot);
    assert_eq!(newer.reports[0].at.unwrap().seconds, heard.timestamp());
    let began = Instant::now();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), watching.message())
            .await
            .expect("the watcher heard nothing of the new reading")
            .unwrap()
            .unwrap();
        if next.last_heard.unwrap().seconds == heard.timestamp() {
            assert_eq!(next.health(), proto::LampHealth::Fault);
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(10));
    }

    // Billing, apart from the inventory, asks it for the lamp's zone and the zones' names.
    let zone = LampsClient::new(inventory.channel.clone())
        .get(proto::IdRequest { id: lamp.0 })
        .await
        .unwrap()
        .into_inner()
        .zone_id;
    let mut billing = BillingClient::new(field.channel.clone());
    let today = chrono::Utc::now()
        .date_naive()
        .pred_opt()
        .unwrap()
        .to_string();
    let energy = billing
        .get_lamp_energy(proto::GetLampEnergyRequest {
            lamp_id: lamp.0,
            date: today.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(energy.zone_id, zone);
    let missing = billing
        .get_lamp_energy(proto::GetLampEnergyRequest {
            lamp_id: 987_654,
            date: today.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let by_zone = proto::GetTotalsRequest {
        from: today.clone(),
        to: today.clone(),
        group_by: proto::GroupBy::Zone as i32,
        zone_id: zone,
        ..Default::default()
    };
    billing.get_totals(by_zone.clone()).await.unwrap();
    let unknown = billing
        .get_totals(proto::GetTotalsRequest {
            zone_id: 99_999,
            ..by_zone.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // The inventory tells the processes apart from it which lamps a telecell drives.
    let wiring = common::first_message(
        LampsClient::new(catalogue.channel.clone())
            .list_wiring(proto::ListWiringRequest {
                telecell_uuids: vec![lamp.1.clone(), "not-in-the-estate".into()],
            })
            .await,
    )
    .await;
    assert_eq!(wiring.lamps.len(), 1, "{wiring:?}");
    assert_eq!(
        (
            wiring.lamps[0].lamp_id,
            &wiring.lamps[0].telecell_uuid,
            wiring.lamps[0].zone_id
        ),
        (lamp.0, &lamp.1, zone)
    );
    let blank = LampsClient::new(catalogue.channel.clone())
        .list_wiring(proto::ListWiringRequest {
            telecell_uuids: vec![" ".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(blank.code(), Code::InvalidArgument, "{blank:?}");
    assert!(blank.message().contains("telecell_uuids"), "{blank:?}");

    catalogue.stop().await;
    let unasked = billing.get_totals(by_zone).await.unwrap_err();
    unavailable_saying(&unasked, "cannot ask the inventory");
    // Ingest asks the inventory which lamps a reporting telecell drives, never its tables
    // (the telecell's row is in the database).
    let later = at + chrono::Duration::minutes(30);
    let unresolved = TelemetryClient::new(field.channel.clone())
        .report(futures::stream::iter(vec![earth_leakage(
            &lamp.1, lamp.0, later,
        )]))
        .await
        .unwrap_err();
    unavailable_saying(&unresolved, "cannot ask the inventory");

    // A telemetry process taking the leader's role reads every lamp's wiring from the
    // inventory as its service account: with the inventory down it holds the role without
    // leading, and leads once the inventory is back.
    field.stop().await;
    // With telemetry and faults gone, the inventory cannot say a lamp's status (the readings'
    // and faults' rows are in the database), and its watcher ends to be resumed.
    let unobserved = lamps
        .get_status(proto::IdRequest { id: lamp.0 })
        .await
        .unwrap_err();
    unavailable_saying(&unobserved, "cannot ask the telemetry");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watching.message().await {
                Ok(Some(_)) => continue,
                outcome => return outcome,
            }
        }
    })
    .await
    .expect("the watcher went on after telemetry stopped");
    assert!(ended.is_err() || ended.unwrap().is_none());
    let (store, config) = field_config("telemetry,faults");
    let mut field =
        TestServer::on_address(tempfile::tempdir().unwrap(), store, config, &field_address).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(
        health(&field, singularity::server::LEADER_HEALTH_SERVICE).await,
        SERVING,
        "led without the inventory's wiring"
    );
    let mut catalogue = TestServer::on_address(
        tempfile::tempdir().unwrap(),
        singularity::store::open_url(&url).unwrap(),
        catalogue_config(),
        &catalogue.address.to_string(),
    )
    .await;
    let began = Instant::now();
    while health(&field, singularity::server::LEADER_HEALTH_SERVICE).await != SERVING {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "never led once the inventory was back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ack = send(&field, vec![earth_leakage(&lamp.1, lamp.0, later)]).await;
    assert_eq!(ack.stored, 1, "{ack:?}");
    catalogue.stop().await;

    // Signing in at a process without auth says where to sign in instead.
    let Err(refused) = singularity::link::sign_in(field.bare.clone(), "admin", "whatever").await
    else {
        panic!("the field process does not serve sign-in");
    };
    assert!(
        refused
            .to_string()
            .contains("point --server at the gateway"),
        "{refused}"
    );

    // The field process asks the auth process who a caller is, never the sessions table:
    // with auth gone, a session it has not seen yet cannot be checked, though its row is
    // in the database.
    let unseen = common::session_for(field.store.as_ref(), "night-owl", Role::User);
    inventory.stop().await;
    let mut faults = FaultsClient::new(with_token(field.bare.clone(), Some(&unseen)).unwrap());
    let unchecked = faults
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap_err();
    unavailable_saying(&unchecked, "cannot check the session");
    field.stop().await;
}

/// The call was refused as UNAVAILABLE, saying `words`.
fn unavailable_saying(refused: &tonic::Status, words: &str) {
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains(words), "{refused:?}");
}

/// Wrong passwords for `count` different users, each sent as from `forwarded`; the codes.
async fn failed_sign_ins(server: &TestServer, forwarded: &str, count: usize) -> Vec<Code> {
    let mut codes = Vec::new();
    for n in 0..count {
        let mut request = tonic::Request::new(proto::LoginRequest {
            username: format!("nobody-{forwarded}-{n}"),
            password: "wrong-password".into(),
        });
        request
            .metadata_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
        let refused = proto::auth_client::AuthClient::new(server.bare.clone())
            .login(request)
            .await
            .unwrap_err();
        codes.push(refused.code());
    }
    codes
}

#[tokio::test]
async fn only_a_trusted_gateway_names_the_caller_to_the_sign_in_limit() {
    let limited = || {
        let mut config = common::config();
        config.limits.login.per_peer = 3;
        config.limits.login.per_user = 100;
        config
    };
    let mut trusting = limited();
    trusting.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let mut behind = TestServer::start_with(1, trusting).await;
    let held = failed_sign_ins(&behind, "203.0.113.7", 4).await;
    assert_eq!(held[3], Code::ResourceExhausted, "{held:?}");
    // Another caller through the same gateway is not held off.
    let other = failed_sign_ins(&behind, "203.0.113.8", 1).await;
    assert_eq!(other, vec![Code::Unauthenticated]);
    behind.stop().await;

    // A server that trusts nobody ignores the header: it is all one address.
    let mut direct = TestServer::start_with(1, limited()).await;
    failed_sign_ins(&direct, "203.0.113.7", 3).await;
    let spoofed = failed_sign_ins(&direct, "203.0.113.8", 1).await;
    assert_eq!(spoofed, vec![Code::ResourceExhausted]);
    direct.stop().await;
}
