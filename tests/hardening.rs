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
    let at = Some(singularity::wire::timestamp(chrono::Utc::now()));
    let good = proto::TelecellReport {
        telecell_uuid: uuid,
        lamp_id: lamp,
        at,
        voltage_v: 236.0,
        power_factor: 0.95,
        link_quality_pct: 90,
        ..Default::default()
    };
    let stranger = proto::TelecellReport {
        telecell_uuid: "f".repeat(25 * 1024),
        ..good.clone()
    };
    let ack = send(&server, vec![stranger, good]).await;
    assert_eq!((ack.stored, ack.rejected), (1, 1));
    assert!(
        ack.rejections[0].reason.len() < 300,
        "{}",
        ack.rejections[0].reason
    );

    // And it still serves.
    let lamp = LampsClient::new(server.channel.clone())
        .get(proto::IdRequest { id: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lamp.id, 1);
    server.stop().await;
}
