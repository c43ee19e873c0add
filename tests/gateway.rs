//! The brief's deployment through real sockets: on one PostgreSQL database, two processes
//! serving inventory and auth, one serving telemetry, faults and billing, and the gateway in
//! front. Every call goes through the gateway: it authenticates by asking the auth service,
//! refuses by role, forwards unary calls and streams both ways, answers health and
//! reflection for the whole API, forgets a token at logout, limits calls per user, and
//! carries reads on through the other instance when one inventory process stops. A malformed
//! request is refused by the gateway itself, in the words its service would use.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, earth_leakage, lamps_with_telecells, next_events};
use singularity::domain::inventory::{EntityStatus, NewUser, Role};
use singularity::gateway::{CallLimits, GatewayConfig};
use singularity::link::{AuthedChannel, with_token};
use singularity::proto::{
    self, auth_client::AuthClient, billing_client::BillingClient, faults_client::FaultsClient,
    lamps_client::LampsClient, telemetry_client::TelemetryClient,
};
use singularity::server::Services;
use singularity::server::services::Part;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Gateway {
    bare: Channel,
    metrics: Arc<singularity::server::metrics::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    async fn start(routes: Vec<(Part, Vec<String>)>, limits: CallLimits) -> Self {
        Self::start_with(routes, limits, Duration::from_millis(200)).await
    }

    async fn start_with(
        routes: Vec<(Part, Vec<String>)>,
        limits: CallLimits,
        health_interval: Duration,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = GatewayConfig {
            routes,
            limits,
            health_interval,
            ..GatewayConfig::default()
        };
        let metrics = Arc::new(singularity::server::metrics::Metrics::default());
        tokio::spawn(singularity::gateway::run(
            listener,
            config,
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let bare = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            bare,
            metrics,
            stop: Some(stop),
        }
    }

    fn signed_in(&self, token: &str) -> AuthedChannel {
        with_token(self.bare.clone(), Some(token)).unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serving(channel: &Channel, service: &str) -> bool {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == 1)
}

/// Where the parts run: the inventory and auth processes, and the field process (telemetry,
/// faults, billing) at an address chosen first.
struct Deployment {
    inventory: Vec<String>,
    field: String,
}

/// A process serving `services` on `address`; one without a part asks the deployment's
/// processes serving it.
async fn on(
    url: &str,
    services: &str,
    seeded: bool,
    peers: &Deployment,
    address: &str,
) -> TestServer {
    let mut config = common::config();
    config.services = Services::parse(services).unwrap();
    if !config.services.serves(Part::Auth) {
        config.auth_urls = peers.inventory.clone();
    }
    if config.services.check_inventory_urls(&[]).is_err() {
        config.inventory_urls = peers.inventory.clone();
    }
    let field = vec![format!("http://{}", peers.field)];
    if config
        .services
        .check_status_urls(Part::Telemetry, "", &[])
        .is_err()
    {
        config.telemetry_urls = field.clone();
    }
    if config
        .services
        .check_status_urls(Part::Faults, "", &[])
        .is_err()
    {
        config.faults_urls = field;
    }
    let store = singularity::store::open_url(url).unwrap();
    if config.services.check_service_account(None, false).is_err() {
        config.service_account = Some(common::service_account(store.as_ref()));
    }
    let dir = tempfile::tempdir().unwrap();
    if seeded {
        TestServer::seeded_with(dir, store, 30, config).await
    } else {
        TestServer::on_address(dir, store, config, address).await
    }
}

#[tokio::test]
async fn the_services_apart_behind_the_gateway() {
    if std::env::var("SINGULARITY_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: needs the test PostgreSQL cluster (scripts/test starts one)");
        return;
    }
    let url = common::fresh_postgres_database();
    let mut peers = Deployment {
        inventory: Vec::new(),
        field: format!("127.0.0.1:{}", common::free_port()),
    };
    let mut first = on(&url, "inventory,auth", true, &peers, "127.0.0.1:0").await;
    let mut second = on(&url, "inventory,auth", false, &peers, "127.0.0.1:0").await;
    let both = vec![first.url(), second.url()];
    peers.inventory = both.clone();
    let address = peers.field.clone();
    let mut field = on(&url, "telemetry,faults,billing", false, &peers, &address).await;
    let gateway = Gateway::start(
        vec![
            (Part::Inventory, both.clone()),
            (Part::Auth, both),
            (Part::Telemetry, vec![field.url()]),
            (Part::Faults, vec![field.url()]),
            (Part::Billing, vec![field.url()]),
        ],
        CallLimits {
            per_user: 0,
            per_address: 0,
        },
    )
    .await;
    let admin = gateway.signed_in(&first.token);

    // Health and reflection for the whole API, at the gateway.
    let began = Instant::now();
    while !serving(&gateway.bare, "").await {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the gateway never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving(&gateway.bare, "singularity.v1.Lamps").await);
    assert!(serving(&gateway.bare, "singularity.v1.Faults").await);

    // Unauthenticated and refused by role before reaching a service.
    let anonymous = LampsClient::new(gateway.bare.clone())
        .get(proto::IdRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let forged = LampsClient::new(gateway.signed_in("sgt_not-a-token"))
        .get(proto::IdRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    let operator = gateway.signed_in(&session(&first, Role::User));
    let refused = LampsClient::new(operator)
        .delete(proto::IdRequest { id: 1 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("needs the role admin"),
        "{refused:?}"
    );

    // Unary calls, a stream of reports in, a stream of events out.
    let (lamp, uuid) = lamps_with_telecells(&first, 1).await.remove(0);
    let got = LampsClient::new(admin.clone())
        .get(proto::IdRequest { id: lamp })
        .await
        .unwrap();
    assert!(got.metadata().get("x-request-id").is_some());
    let mut watch = FaultsClient::new(admin.clone())
        .watch(proto::WatchFaultsRequest {
            after_seq: 0,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let at: chrono::DateTime<chrono::Utc> = "2026-11-03T12:00:00Z".parse().unwrap();
    let ack = TelemetryClient::new(admin.clone())
        .report(tokio_stream::iter(vec![earth_leakage(&uuid, lamp, at)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.stored, 1);
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].fault.as_ref().unwrap().lamp_id, lamp);

    // A logout through the gateway ends the token there at once.
    first
        .store
        .create_user(NewUser {
            username: "gw-night".into(),
            display_name: "Night shift".into(),
            role: Role::User,
            password_hash: singularity::passwords::hash("night-shift-pass").unwrap(),
            status: EntityStatus::Active,
        })
        .unwrap();
    let signed_in = AuthClient::new(gateway.bare.clone())
        .login(proto::LoginRequest {
            username: "gw-night".into(),
            password: "night-shift-pass".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let own = gateway.signed_in(&signed_in.token);
    LampsClient::new(own.clone())
        .get(proto::IdRequest { id: lamp })
        .await
        .unwrap();
    AuthClient::new(own.clone())
        .logout(proto::LogoutRequest {})
        .await
        .unwrap();
    let after = LampsClient::new(own)
        .get(proto::IdRequest { id: lamp })
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated);

    // One inventory process stops: reads carry on through the other, and the gateway's
    // metrics say which instance is down.
    let first_url = first.url();
    let upstream = |url: &str, healthy: u8| {
        format!("upstream_healthy{{service=\"inventory\",url=\"{url}\"}} {healthy}")
    };
    assert!(
        gateway.metrics.encode().contains(&upstream(&first_url, 1)),
        "{}",
        gateway.metrics.encode()
    );
    first.stop().await;
    let mut lamps = LampsClient::new(admin.clone());
    for _ in 0..50 {
        lamps.get(proto::IdRequest { id: lamp }).await.unwrap();
    }
    let began = Instant::now();
    while !gateway.metrics.encode().contains(&upstream(&first_url, 0)) {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{}",
            gateway.metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gateway);
    field.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_gateway_limits_calls_per_user() {
    let mut server = TestServer::start(5).await;
    let all = vec![server.url()];
    let routes = Part::ALL.iter().map(|p| (*p, all.clone())).collect();
    let gateway = Gateway::start(
        routes,
        CallLimits {
            per_user: 5,
            per_address: 0,
        },
    )
    .await;
    let lamps = LampsClient::new(gateway.signed_in(&server.token));
    // Twenty calls at once, as a busy console or script would make them.
    let calls = (0..20).map(|_| {
        let mut lamps = lamps.clone();
        async move { lamps.get(proto::IdRequest { id: 1 }).await }
    });
    let mut refused = 0;
    for outcome in futures::future::join_all(calls).await {
        if let Err(status) = outcome {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            refused += 1;
        }
    }
    // Twenty calls take far less than the two seconds that would allow ten.
    assert!(refused >= 10, "{refused} of 20 refused");
    drop(gateway);
    server.stop().await;
}

/// What the gateway answers, and what the server answers directly, to the same request.
async fn both_ways<F, Fut>(
    gateway: AuthedChannel,
    direct: AuthedChannel,
    call: F,
) -> [tonic::Status; 2]
where
    F: Fn(AuthedChannel) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    [
        call(gateway).await.unwrap_err(),
        call(direct).await.unwrap_err(),
    ]
}

#[tokio::test]
async fn the_gateway_refuses_malformed_requests_in_the_services_words_before_forwarding() {
    let mut server = TestServer::start(5).await;
    // Faults and billing are routed to an address where nothing listens: whatever comes back
    // for them comes from the gateway.
    let nowhere = format!("http://127.0.0.1:{}", common::free_port());
    let routes = Part::ALL
        .iter()
        .map(|p| match p {
            Part::Faults | Part::Billing => (*p, vec![nowhere.clone()]),
            _ => (*p, vec![server.url()]),
        })
        .collect();
    let gateway = Gateway::start(
        routes,
        CallLimits {
            per_user: 0,
            per_address: 0,
        },
    )
    .await;
    let through = gateway.signed_in(&server.token);
    let direct = server.channel.clone();

    // Refused by the gateway, naming the field, in the words the service uses.
    let refusals = [
        both_ways(through.clone(), direct.clone(), |c| async move {
            FaultsClient::new(c)
                .acknowledge(proto::FaultActionRequest {
                    fault_id: 7,
                    expected_version: 0,
                    ..Default::default()
                })
                .await
                .map(drop)
        })
        .await,
        both_ways(through.clone(), direct.clone(), |c| async move {
            FaultsClient::new(c)
                .add_note(proto::FaultActionRequest {
                    fault_id: 7,
                    note: "   ".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
        })
        .await,
        both_ways(through.clone(), direct.clone(), |c| async move {
            BillingClient::new(c)
                .get_totals(proto::GetTotalsRequest {
                    from: "2026-03-02".into(),
                    to: "2026-03-01".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
        })
        .await,
        both_ways(through.clone(), direct.clone(), |c| async move {
            FaultsClient::new(c)
                .watch(proto::WatchFaultsRequest {
                    after_seq: 0,
                    filter: Some(proto::FaultFilter {
                        zone_id: -3,
                        ..Default::default()
                    }),
                })
                .await
                .map(drop)
        })
        .await,
        both_ways(through.clone(), direct.clone(), |c| async move {
            LampsClient::new(c)
                .create(proto::CreateLampRequest {
                    reference: "LMP-NEW".into(),
                    lamp_type_id: 0,
                    ..Default::default()
                })
                .await
                .map(drop)
        })
        .await,
    ];
    let fields = [
        "expected_version",
        "note",
        "to",
        "filter.zone_id",
        "lamp_type_id",
    ];
    for ([gateway_said, service_said], field) in refusals.iter().zip(fields) {
        assert_eq!(
            gateway_said.code(),
            Code::InvalidArgument,
            "{gateway_said:?}"
        );
        assert!(
            gateway_said.message().starts_with(field),
            "{field}: {gateway_said:?}"
        );
        assert_eq!(gateway_said.message(), service_said.message());
    }

    // The same calls, sound, do go on: to nowhere for faults, to the server for lamps.
    let sound = FaultsClient::new(through.clone())
        .acknowledge(proto::FaultActionRequest {
            fault_id: 7,
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sound.code(), Code::Unavailable, "{sound:?}");
    let missing = LampsClient::new(through.clone())
        .get(proto::IdRequest { id: 999_999 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    // Bytes that are not the method's message are refused as such.
    let mut raw = tonic::client::Grpc::new(through.clone());
    raw.ready().await.unwrap();
    let garbled: Result<tonic::Response<proto::Lamp>, _> = raw
        .unary(
            tonic::Request::new(proto::LoginRequest {
                username: "not an id".into(),
                password: String::new(),
            }),
            http::uri::PathAndQuery::from_static("/singularity.v1.Lamps/Get"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let garbled = garbled.unwrap_err();
    assert_eq!(garbled.code(), Code::InvalidArgument, "{garbled:?}");
    assert!(
        garbled.message().contains("singularity.v1.IdRequest"),
        "{garbled:?}"
    );
    drop(gateway);
    server.stop().await;
}

#[tokio::test]
async fn a_write_goes_to_the_next_instance_when_the_first_refuses_the_connection() {
    let mut kept = TestServer::start(5).await;
    let mut gone = TestServer::start(5).await;
    let both = vec![gone.url(), kept.url()];
    let routes = Part::ALL.iter().map(|p| (*p, both.clone())).collect();
    // Health asked once, at the start: both look healthy for the rest of the test.
    let gateway = Gateway::start_with(
        routes,
        CallLimits {
            per_user: 0,
            per_address: 0,
        },
        Duration::from_secs(3_600),
    )
    .await;
    let began = Instant::now();
    while !serving(&gateway.bare, "").await {
        assert!(began.elapsed() < Duration::from_secs(10), "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gone.stop().await;
    // Sign-ins are writes: each reaches a server (which refuses the password), none is lost
    // to the instance that went away, though the gateway still thinks it healthy.
    for attempt in 0..10 {
        let refused = AuthClient::new(gateway.bare.clone())
            .login(proto::LoginRequest {
                username: format!("nobody-{attempt}"),
                password: "not-a-password".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    drop(gateway);
    kept.stop().await;
}

fn session(server: &TestServer, role: Role) -> String {
    common::session_for(
        server.store.as_ref(),
        &format!("gw-{}", role.as_str()),
        role,
    )
}
