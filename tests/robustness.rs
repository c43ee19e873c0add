//! Property tests: whatever bytes or values a client sends, decoding and validating a request
//! (telemetry reports included) returns a value or a `ValidationError`, and never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use chrono::Utc;
use proptest::prelude::*;
use prost::Message;
use singularity::proto;
use singularity::wire::{self, billing as wire_billing, faults as wire_faults};

/// Decodes `bytes` as `T` and, when that works, validates it with `check`.
fn decode_then<T: Message + Default>(bytes: &[u8], check: impl Fn(&T)) {
    if let Ok(message) = T::decode(bytes) {
        check(&message);
    }
}

fn every_validator(bytes: &[u8]) {
    decode_then::<proto::ListOptions>(bytes, |m| drop(wire::list_request(m)));
    decode_then::<proto::SearchByLocationRequest>(bytes, |m| drop(wire::search_request(m)));
    decode_then::<proto::CreateBasestationRequest>(bytes, |m| drop(wire::new_basestation(m)));
    decode_then::<proto::UpdateBasestationRequest>(bytes, |m| drop(wire::basestation_update(m)));
    decode_then::<proto::CreateTelecellRequest>(bytes, |m| drop(wire::new_telecell(m)));
    decode_then::<proto::UpdateTelecellRequest>(bytes, |m| drop(wire::telecell_update(m)));
    decode_then::<proto::TelecellLampsRequest>(bytes, |m| drop(wire::lamp_ids(m)));
    decode_then::<proto::CreateAssetRequest>(bytes, |m| drop(wire::new_asset(m)));
    decode_then::<proto::UpdateAssetRequest>(bytes, |m| drop(wire::asset_update(m)));
    decode_then::<proto::CreateLampRequest>(bytes, |m| drop(wire::new_lamp(m)));
    decode_then::<proto::UpdateLampRequest>(bytes, |m| drop(wire::lamp_update(m)));
    decode_then::<proto::CreateUserRequest>(bytes, |m| drop(wire::new_user(m)));
    decode_then::<proto::UpdateUserRequest>(bytes, |m| drop(wire::user_update(m)));
    decode_then::<proto::ListFaultsRequest>(bytes, |m| {
        drop(wire_faults::filter(m.filter.as_ref()))
    });
    decode_then::<proto::FaultActionRequest>(bytes, |m| {
        drop(wire_faults::note(&m.note));
        drop(wire_faults::actor(&m.actor));
    });
    decode_then::<proto::SetTariffRequest>(bytes, |m| drop(wire_billing::set_tariff(m)));
    decode_then::<proto::TelecellReport>(bytes, |m| {
        if let Ok(raw) = wire::telecell_report(m) {
            drop(raw.validate(Utc::now(), chrono::DateTime::<Utc>::MIN_UTC));
        }
    });
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1.0e6..1.0e6f64,
    ]
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 '\";%_\\-]{0,40}",
        Just("'; DROP TABLE lamps; --".to_owned()),
        Just("x".repeat(5_000)),
    ]
}

prop_compose! {
    fn any_timestamp()(seconds in any::<i64>(), nanos in any::<i32>(), near in any::<bool>(), offset in -10_000_000i64..10_000_000) -> prost_types::Timestamp {
        if near {
            prost_types::Timestamp { seconds: Utc::now().timestamp() + offset, nanos: nanos.rem_euclid(1_000_000_000) }
        } else {
            prost_types::Timestamp { seconds, nanos }
        }
    }
}

prop_compose! {
    fn any_report()(
        uuid in any_text(),
        lamp_id in any::<i64>(),
        at in proptest::option::of(any_timestamp()),
        lamp_on in any::<bool>(),
        dims in (any::<u32>(), any::<u32>()),
        electrical in (any_f64(), any_f64(), any_f64(), any_f64(), any_f64()),
        counters in (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
    ) -> proto::TelecellReport {
        proto::TelecellReport {
            telecell_uuid: uuid,
            lamp_id,
            at,
            lamp_on,
            dim_target_pct: dims.0,
            dim_actual_pct: dims.1,
            voltage_v: electrical.0,
            current_a: electrical.1,
            power_w: electrical.2,
            power_factor: electrical.3,
            temperature_c: electrical.4,
            energy_wh: counters.0,
            burn_hours: counters.1,
            switch_count: counters.2,
            supply_loss_count: counters.3,
            link_quality_pct: counters.4,
            alarms: None,
        }
    }
}

prop_compose! {
    fn any_tariff()(
        name in any_text(),
        zone in prop_oneof![any_text(), Just("Europe/London".to_owned())],
        from in prop_oneof![any_text(), Just("2026-01-01".to_owned())],
        to in prop_oneof![any_text(), Just(String::new()), Just("2025-01-01".to_owned())],
        bands in proptest::collection::vec((any_text(), prop_oneof![any_text(), Just("07:00".to_owned()), Just("24:00".to_owned())], any::<u32>()), 0..6),
    ) -> proto::SetTariffRequest {
        proto::SetTariffRequest {
            tariff: Some(proto::Tariff {
                id: 0,
                name,
                time_zone: zone,
                valid_from: from,
                valid_to: to,
                bands: bands
                    .into_iter()
                    .map(|(name, starts_at, price)| proto::TariffBand {
                        name,
                        starts_at,
                        price_millipence_per_kwh: price,
                    })
                    .collect(),
            }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_decode_and_validate_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        every_validator(&bytes);
    }

    #[test]
    fn a_report_with_any_values_is_accepted_or_refused_naming_a_field(report in any_report()) {
        match wire::telecell_report(&report).map(|raw| raw.validate(Utc::now(), chrono::DateTime::<Utc>::MIN_UTC)) {
            Ok(Ok(reading)) => {
                prop_assert!(reading.voltage_v.is_finite());
                prop_assert!(reading.dim_actual_pct <= 100);
            }
            Ok(Err(error)) | Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
        // The same report through the wire encoding.
        every_validator(&report.encode_to_vec());
    }

    #[test]
    fn a_tariff_with_any_values_is_accepted_or_refused_naming_a_field(request in any_tariff()) {
        if let Err(error) = wire_billing::set_tariff(&request) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn listing_and_search_options_with_any_values(
        page_size in proptest::option::of(any::<i32>()),
        token in any_text(),
        limit in proptest::option::of(any::<i64>()),
        corners in (any_f64(), any_f64(), any_f64(), any_f64()),
    ) {
        let _ = wire::list_request(&proto::ListOptions {
            page_size,
            page_token: token,
            limit,
            ..Default::default()
        });
        let _ = wire::search_request(&proto::SearchByLocationRequest {
            r#box: Some(proto::GeoBox { south: corners.0, west: corners.1, north: corners.2, east: corners.3 }),
            page_size,
            include_deleted: false,
        });
    }
}
