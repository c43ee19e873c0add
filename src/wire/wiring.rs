//! Lamps' wiring on the wire (`Lamps.ListWiring`): what ingest and the fault engine need of a
//! lamp, sent by the inventory and read back, checked, by a process that runs apart from it.

use crate::domain::ValidationError;
use crate::domain::geo::GeoPoint;
use crate::domain::telemetry::{LampContext, LampProfile};
use crate::proto;

/// Telecells one `ListWiring` request may name: a chunk of reports names at most 2,000.
pub const MAX_WIRING_TELECELLS: usize = 10_000;
/// A stored telecell uuid is 36 characters; a longer one cannot name a telecell.
pub const MAX_TELECELL_UUID: usize = 64;

/// The request's telecells (none: every lamp a telecell drives).
pub fn list_wiring(r: &proto::ListWiringRequest) -> Result<Vec<String>, ValidationError> {
    if r.telecell_uuids.len() > MAX_WIRING_TELECELLS {
        return Err(ValidationError::new(
            "telecell_uuids",
            format!(
                "at most {MAX_WIRING_TELECELLS} telecells per request (asked for {})",
                r.telecell_uuids.len()
            ),
        ));
    }
    for uuid in &r.telecell_uuids {
        if uuid.trim().is_empty() || uuid.chars().count() > MAX_TELECELL_UUID {
            return Err(ValidationError::new(
                "telecell_uuids",
                format!(
                    "{} is not a telecell uuid",
                    crate::domain::validation::quoted(uuid)
                ),
            ));
        }
    }
    Ok(r.telecell_uuids.clone())
}

/// A lamp's wiring as the inventory sends it; `telecell_uuid` when telecells were named.
pub fn lamp_wiring(telecell_uuid: Option<&str>, lamp: &LampContext) -> proto::LampWiring {
    proto::LampWiring {
        lamp_id: lamp.lamp_id,
        telecell_uuid: telecell_uuid.unwrap_or_default().to_owned(),
        telecell_id: lamp.telecell_id,
        basestation_id: lamp.basestation_id,
        circuit_id: lamp.circuit_id.unwrap_or_default(),
        zone_id: lamp.zone_id.unwrap_or_default(),
        wattage_w: lamp.profile.wattage_w,
        dimmable: lamp.profile.dimmable,
        location: lamp.profile.location.map(super::point),
        since: Some(super::timestamp(lamp.since)),
    }
}

/// A lamp's wiring as another process reads it from the inventory's answer.
pub fn lamp_context(w: &proto::LampWiring) -> Result<LampContext, ValidationError> {
    let since = w
        .since
        .as_ref()
        .ok_or_else(|| ValidationError::new("since", "is required"))?;
    Ok(LampContext {
        lamp_id: super::id("lamp_id", w.lamp_id)?,
        telecell_id: super::id("telecell_id", w.telecell_id)?,
        basestation_id: super::id("basestation_id", w.basestation_id)?,
        circuit_id: Some(w.circuit_id).filter(|id| *id != 0),
        zone_id: Some(w.zone_id).filter(|id| *id != 0),
        profile: LampProfile {
            wattage_w: w.wattage_w,
            dimmable: w.dimmable,
            location: w
                .location
                .as_ref()
                .map(|p| GeoPoint::new(p.lat, p.lon).map_err(|e| e.within("location")))
                .transpose()?,
        },
        since: super::from_timestamp("since", since)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp(circuit: Option<i64>, location: Option<GeoPoint>) -> LampContext {
        LampContext {
            lamp_id: 7,
            telecell_id: 70,
            basestation_id: 3,
            circuit_id: circuit,
            zone_id: Some(2),
            profile: LampProfile {
                wattage_w: 36,
                dimmable: true,
                location,
            },
            since: "2026-11-30T20:00:00.250Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_lamp_s_wiring_reads_back_as_it_was_sent() {
        for sent in [
            lamp(Some(5), Some(GeoPoint::new(51.5, -0.12).unwrap())),
            lamp(None, None),
        ] {
            let wire = lamp_wiring(Some("uuid"), &sent);
            assert_eq!(lamp_context(&wire).unwrap(), sent);
        }
    }

    #[test]
    fn an_answer_without_its_lamp_or_instant_is_refused() {
        let mut wire = lamp_wiring(None, &lamp(None, None));
        wire.since = None;
        assert_eq!(lamp_context(&wire).unwrap_err().field, "since");
        let mut wire = lamp_wiring(None, &lamp(None, None));
        wire.lamp_id = 0;
        assert_eq!(lamp_context(&wire).unwrap_err().field, "lamp_id");
    }

    #[test]
    fn a_request_names_at_most_so_many_telecells_each_a_plausible_uuid() {
        let asking = |uuids: Vec<String>| {
            list_wiring(&proto::ListWiringRequest {
                telecell_uuids: uuids,
            })
        };
        assert_eq!(asking(Vec::new()).unwrap(), Vec::<String>::new());
        let too_many = vec!["a".to_owned(); MAX_WIRING_TELECELLS + 1];
        assert_eq!(asking(too_many).unwrap_err().field, "telecell_uuids");
        assert!(asking(vec![" ".into()]).is_err());
        assert!(asking(vec!["x".repeat(MAX_TELECELL_UUID + 1)]).is_err());
    }
}
