//! Deterministic generation of a realistic street-lighting estate around a real city centre:
//! streets on a block grid, columns every 30-40 m, wards, circuits of 20-200 columns,
//! basestations serving 1,000-3,000 telecells, relaying telecells and twin-lamp columns.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::ValidationError;
use super::geo::GeoPoint;
use super::inventory::{ControlType, LampTechnology, LampType};

/// A city the estate can be laid out around.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct City {
    pub key: &'static str,
    pub name: &'static str,
    pub centre_lat: f64,
    pub centre_lon: f64,
    pub time_zone: &'static str,
    wards: &'static [&'static str],
}

pub const CITIES: [City; 3] = [
    City {
        key: "london",
        name: "London (Westminster)",
        centre_lat: 51.4975,
        centre_lon: -0.1357,
        time_zone: "Europe/London",
        wards: &[
            "St James's",
            "West End",
            "Marylebone",
            "Vincent Square",
            "Pimlico North",
            "Knightsbridge and Belgravia",
            "Hyde Park",
            "Bayswater",
            "Lancaster Gate",
            "Regent's Park",
            "Abbey Road",
            "Little Venice",
            "Church Street",
            "Harrow Road",
            "Westbourne",
            "Maida Vale",
        ],
    },
    City {
        key: "manchester",
        name: "Manchester",
        centre_lat: 53.4794,
        centre_lon: -2.2453,
        time_zone: "Europe/London",
        wards: &[
            "Deansgate",
            "Piccadilly",
            "Ancoats and Beswick",
            "Hulme",
            "Ardwick",
            "Moss Side",
            "Cheetham",
            "Miles Platting and Newton Heath",
            "Longsight",
            "Rusholme",
            "Whalley Range",
            "Gorton and Abbey Hey",
        ],
    },
    City {
        key: "melbourne",
        name: "Melbourne",
        centre_lat: -37.8136,
        centre_lon: 144.9631,
        time_zone: "Australia/Melbourne",
        wards: &[
            "Carlton",
            "Docklands",
            "East Melbourne",
            "Kensington",
            "North Melbourne",
            "Parkville",
            "Southbank",
            "South Yarra",
            "West Melbourne",
            "Fitzroy",
            "Richmond",
            "Collingwood",
        ],
    },
];

impl City {
    pub fn by_key(key: &str) -> Result<&'static City, ValidationError> {
        CITIES
            .iter()
            .find(|c| c.key.eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                let known: Vec<&str> = CITIES.iter().map(|c| c.key).collect();
                ValidationError::new(
                    "city",
                    format!("unknown city {key:?}; choose one of {}", known.join(", ")),
                )
            })
    }

    pub fn centre(&self) -> GeoPoint {
        GeoPoint::new(self.centre_lat, self.centre_lon).unwrap_or_else(|_| unreachable!())
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct EstateSpec {
    pub lamps: u32,
    pub rng_seed: u64,
    pub city: &'static City,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedZone {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedCircuit {
    pub id: i64,
    pub name: String,
    pub zone_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedBasestation {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub firmware_version: String,
    pub location: GeoPoint,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedTelecell {
    pub id: i64,
    pub uuid: Uuid,
    pub basestation_id: i64,
    pub relay_via_id: Option<i64>,
    pub location: GeoPoint,
    pub firmware_version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedAsset {
    pub id: i64,
    pub reference: String,
    pub location: GeoPoint,
    pub zone_id: i64,
    pub circuit_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeedLamp {
    pub id: i64,
    pub reference: String,
    pub asset_id: i64,
    pub lamp_type_id: i64,
    pub telecell_id: i64,
}

/// A whole estate, with ids assigned from 1 in each table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Estate {
    pub lamp_types: Vec<LampType>,
    pub zones: Vec<SeedZone>,
    pub circuits: Vec<SeedCircuit>,
    pub basestations: Vec<SeedBasestation>,
    pub telecells: Vec<SeedTelecell>,
    pub assets: Vec<SeedAsset>,
    pub lamps: Vec<SeedLamp>,
}

/// Real luminaire ratings in circuit watts (lamp plus gear), with the share of the estate.
fn lamp_catalogue() -> Vec<(LampType, u32)> {
    let t = |id, name: &str, technology, wattage_w, control_type| LampType {
        id,
        name: name.into(),
        technology,
        wattage_w,
        control_type,
    };
    use ControlType::*;
    use LampTechnology::*;
    vec![
        (t(1, "LED 24W residential", Led, 24, Dali), 18),
        (t(2, "LED 36W residential", Led, 36, Dali), 22),
        (t(3, "LED 54W distributor", Led, 54, OneToTenVolt), 14),
        (t(4, "LED 80W main road", Led, 80, Dali), 10),
        (t(5, "LED 120W trunk road", Led, 120, Dali), 6),
        (t(6, "SON 70W", Son, 82, Switch), 14),
        (t(7, "SON 100W", Son, 115, Switch), 8),
        (t(8, "SON 150W", Son, 170, Switch), 5),
        (t(9, "SON 250W", Son, 280, Switch), 3),
    ]
}

const BLOCK_M: f64 = 140.0;
const METRES_PER_DEGREE_LAT: f64 = 111_320.0;
const ASSETS_PER_WARD: usize = 3_000;
const TWIN_LAMP_SHARE: f64 = 0.08;
const RELAY_SHARE: f64 = 0.06;

pub fn generate(spec: &EstateSpec) -> Estate {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.rng_seed);
    let catalogue = lamp_catalogue();
    let weight_total: u32 = catalogue.iter().map(|(_, w)| w).sum();
    let target_lamps = spec.lamps as usize;

    // Each block contributes its southern and western street sides: about 2 x 140 m of street.
    let assets_per_block = (2.0 * BLOCK_M / 35.0) as usize;
    let estimated_assets = (target_lamps as f64 / (1.0 + TWIN_LAMP_SHARE)).ceil() as usize;
    let blocks = estimated_assets.div_ceil(assets_per_block).max(1);
    let columns = (blocks as f64).sqrt().ceil() as usize;
    let rows = blocks.div_ceil(columns);
    let half_width = columns as f64 * BLOCK_M / 2.0;
    let half_height = rows as f64 * BLOCK_M / 2.0;
    let blocks_per_ward_side = ((ASSETS_PER_WARD / assets_per_block) as f64).sqrt().ceil() as usize;
    let ward_columns = columns.div_ceil(blocks_per_ward_side);

    let centre = spec.city.centre();
    let metres_per_degree_lon = METRES_PER_DEGREE_LAT * centre.lat().to_radians().cos();
    let to_point = |x: f64, y: f64| {
        let lat = (centre.lat() + y / METRES_PER_DEGREE_LAT).clamp(-90.0, 90.0);
        let lon = centre.lon() + x / metres_per_degree_lon;
        let lon = if lon > 180.0 {
            lon - 360.0
        } else if lon < -180.0 {
            lon + 360.0
        } else {
            lon
        };
        // Survey-grade precision (about 1 cm) is all a column position carries.
        let round = |degrees: f64| (degrees * 1e7).round() / 1e7;
        GeoPoint::new(round(lat), round(lon)).unwrap_or(centre)
    };

    let mut estate = Estate {
        lamp_types: catalogue.iter().map(|(t, _)| t.clone()).collect(),
        ..Estate::default()
    };
    let mut ward_ids: std::collections::HashMap<usize, i64> = std::collections::HashMap::new();
    let mut circuit_left = 0usize;

    'blocks: for block in 0..rows * columns {
        let (row, column) = (block / columns, block % columns);
        let ward_index =
            (row / blocks_per_ward_side) * ward_columns + column / blocks_per_ward_side;
        let zone_id = *ward_ids.entry(ward_index).or_insert_with(|| {
            let id = estate.zones.len() as i64 + 1;
            estate.zones.push(SeedZone {
                id,
                name: ward_name(spec.city, estate.zones.len()),
            });
            id
        });
        let x0 = column as f64 * BLOCK_M - half_width;
        let y0 = row as f64 * BLOCK_M - half_height;
        // The southern side runs east, the western side runs north; lamps stagger across the road.
        for side in 0..2 {
            let mut previous_on_street: Option<i64> = None;
            let mut along = rng.random_range(5.0..20.0);
            while along < BLOCK_M {
                if estate.lamps.len() >= target_lamps {
                    break 'blocks;
                }
                let across = if estate.assets.len() % 2 == 0 {
                    -6.0
                } else {
                    6.0
                };
                let (x, y) = if side == 0 {
                    (x0 + along, y0 + across)
                } else {
                    (x0 + across, y0 + along)
                };
                if circuit_left == 0 {
                    let id = estate.circuits.len() as i64 + 1;
                    estate.circuits.push(SeedCircuit {
                        id,
                        name: format!("FP-{id:05}"),
                        zone_id,
                    });
                    circuit_left = rng.random_range(20..=200);
                }
                circuit_left -= 1;
                let asset_id = estate.assets.len() as i64 + 1;
                let location = to_point(x, y);
                estate.assets.push(SeedAsset {
                    id: asset_id,
                    reference: format!("COL-{asset_id:07}"),
                    location,
                    zone_id,
                    circuit_id: estate.circuits.len() as i64,
                });
                let telecell_id = estate.telecells.len() as i64 + 1;
                let relay_via_id = previous_on_street.filter(|_| rng.random_bool(RELAY_SHARE));
                estate.telecells.push(SeedTelecell {
                    id: telecell_id,
                    uuid: random_uuid(&mut rng),
                    basestation_id: 0,
                    relay_via_id,
                    location,
                    firmware_version: if rng.random_bool(0.8) {
                        "4.2.1"
                    } else {
                        "4.1.7"
                    }
                    .to_owned(),
                });
                previous_on_street = Some(telecell_id);
                let lamp_type_id = pick_lamp_type(&mut rng, &catalogue, weight_total);
                let lamps_here = if rng.random_bool(TWIN_LAMP_SHARE) {
                    2
                } else {
                    1
                };
                for _ in 0..lamps_here {
                    if estate.lamps.len() >= target_lamps {
                        break;
                    }
                    let id = estate.lamps.len() as i64 + 1;
                    estate.lamps.push(SeedLamp {
                        id,
                        reference: format!("LMP-{id:07}"),
                        asset_id,
                        lamp_type_id,
                        telecell_id,
                    });
                }
                along += rng.random_range(30.0..40.0);
            }
        }
    }
    assign_basestations(&mut estate, &mut rng);
    estate
}

fn ward_name(city: &City, index: usize) -> String {
    let base = city.wards[index % city.wards.len()];
    match index / city.wards.len() {
        0 => base.to_owned(),
        round => format!("{base} {}", round + 1),
    }
}

fn pick_lamp_type(rng: &mut ChaCha8Rng, catalogue: &[(LampType, u32)], total: u32) -> i64 {
    let mut ticket = rng.random_range(0..total);
    for (lamp_type, weight) in catalogue {
        if ticket < *weight {
            return lamp_type.id;
        }
        ticket -= weight;
    }
    1
}

fn random_uuid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Splits the telecells, in street order (so each share is a compact area), into runs of
/// 1,000-3,000 and gives each run a basestation at its centre.
fn assign_basestations(estate: &mut Estate, rng: &mut ChaCha8Rng) {
    let total = estate.telecells.len();
    if total == 0 {
        return;
    }
    let count = total.div_ceil(2_000).max(1);
    let base = total / count;
    let mut start = 0;
    for index in 0..count {
        let remaining_stations = count - index;
        let end = if remaining_stations == 1 {
            total
        } else {
            let jitter = (base / 5) as i64;
            let size = (base as i64 + rng.random_range(-jitter..=jitter)).max(1) as usize;
            (start + size).min(total - (remaining_stations - 1))
        };
        let id = index as i64 + 1;
        let served = &mut estate.telecells[start..end];
        let (lat_sum, lon_sum) = served.iter().fold((0.0, 0.0), |(a, b), t| {
            (a + t.location.lat(), b + t.location.lon())
        });
        let n = served.len() as f64;
        for telecell in served.iter_mut() {
            telecell.basestation_id = id;
            // A relay must go through a telecell of the same basestation.
            if telecell
                .relay_via_id
                .is_some_and(|via| (via as usize) <= start)
            {
                telecell.relay_via_id = None;
            }
        }
        let location = GeoPoint::new(lat_sum / n, lon_sum / n).unwrap_or(served[0].location);
        estate.basestations.push(SeedBasestation {
            id,
            uuid: random_uuid(rng),
            name: format!("BS-{id:04}"),
            firmware_version: "7.3.0".to_owned(),
            location,
        });
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(lamps: u32, rng_seed: u64) -> EstateSpec {
        EstateSpec {
            lamps,
            rng_seed,
            city: City::by_key("london").unwrap(),
        }
    }

    #[test]
    fn same_seed_same_estate_other_seed_other_estate() {
        assert_eq!(generate(&spec(3_000, 7)), generate(&spec(3_000, 7)));
        assert_ne!(generate(&spec(3_000, 7)), generate(&spec(3_000, 8)));
    }

    #[test]
    fn exactly_the_requested_lamps_near_the_city() {
        let estate = generate(&spec(10_000, 1));
        assert_eq!(estate.lamps.len(), 10_000);
        let centre = City::by_key("london").unwrap().centre();
        for asset in &estate.assets {
            assert!(asset.location.distance_m(centre) < 5_000.0, "{asset:?}");
        }
    }

    #[test]
    fn some_assets_carry_two_lamps_and_share_the_telecell() {
        let estate = generate(&spec(5_000, 3));
        let mut per_asset = std::collections::HashMap::new();
        for lamp in &estate.lamps {
            per_asset
                .entry(lamp.asset_id)
                .or_insert_with(Vec::new)
                .push(lamp.telecell_id);
        }
        let twins: Vec<_> = per_asset.values().filter(|t| t.len() == 2).collect();
        assert!(!twins.is_empty());
        assert!(twins.iter().all(|t| t[0] == t[1]));
        assert!(per_asset.values().all(|t| t.len() <= 2));
    }

    #[test]
    fn circuits_hold_at_most_200_and_all_but_the_last_at_least_20() {
        let estate = generate(&spec(20_000, 5));
        let mut sizes = vec![0usize; estate.circuits.len()];
        for asset in &estate.assets {
            sizes[asset.circuit_id as usize - 1] += 1;
        }
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|s| (20..=200).contains(s)), "{sizes:?}");
        assert!(*last <= 200);
    }

    #[test]
    fn basestations_serve_between_1000_and_3000_telecells() {
        let estate = generate(&spec(50_000, 9));
        let mut served = vec![0usize; estate.basestations.len()];
        for telecell in &estate.telecells {
            served[telecell.basestation_id as usize - 1] += 1;
        }
        assert!(
            served.iter().all(|n| (1_000..=3_000).contains(n)),
            "{served:?}"
        );
    }

    #[test]
    fn relays_stay_within_their_basestation_and_point_backwards() {
        let estate = generate(&spec(20_000, 11));
        let relaying: Vec<_> = estate
            .telecells
            .iter()
            .filter(|t| t.relay_via_id.is_some())
            .collect();
        assert!(!relaying.is_empty());
        for telecell in relaying {
            let via = &estate.telecells[telecell.relay_via_id.unwrap() as usize - 1];
            assert!(via.id < telecell.id);
            assert_eq!(via.basestation_id, telecell.basestation_id);
        }
    }

    #[test]
    fn wards_have_real_names_and_mixed_lamp_types() {
        let estate = generate(&spec(20_000, 2));
        assert!(estate.zones.len() >= 4);
        assert_eq!(estate.zones[0].name, "St James's");
        let son = estate.lamps.iter().filter(|l| l.lamp_type_id >= 6).count();
        assert!(son > 2_000 && son < 10_000, "{son}");
    }

    #[test]
    fn unknown_city_names_the_choices() {
        let error = City::by_key("atlantis").unwrap_err();
        assert!(error.reason.contains("london"));
    }
}
