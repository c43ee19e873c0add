//! Positions and search boxes on the WGS84 globe, validated on construction.

use super::ValidationError;

/// A valid WGS84 position: lat in [-90, 90], lon in [-180, 180], never NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self, ValidationError> {
        Ok(Self {
            lat: latitude("lat", lat)?,
            lon: longitude("lon", lon)?,
        })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (haversine; good to a few metres at city scale).
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

/// A lat/lon rectangle. `west > east` means the box crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    south: f64,
    west: f64,
    north: f64,
    east: f64,
}

/// One longitude interval of a box; a box crossing the antimeridian has two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LonRange {
    pub west: f64,
    pub east: f64,
}

impl GeoBox {
    pub fn new(south: f64, west: f64, north: f64, east: f64) -> Result<Self, ValidationError> {
        let south = latitude("south", south)?;
        let north = latitude("north", north)?;
        let west = longitude("west", west)?;
        let east = longitude("east", east)?;
        if south > north {
            return Err(ValidationError::new(
                "south",
                format!("must not be north of north ({south} > {north}); swap them"),
            ));
        }
        Ok(Self {
            south,
            west,
            north,
            east,
        })
    }

    pub fn south(self) -> f64 {
        self.south
    }

    pub fn north(self) -> f64 {
        self.north
    }

    /// The longitude intervals to search: one, or two when the box crosses the antimeridian.
    pub fn lon_ranges(self) -> Vec<LonRange> {
        if self.west <= self.east {
            vec![LonRange {
                west: self.west,
                east: self.east,
            }]
        } else {
            vec![
                LonRange {
                    west: self.west,
                    east: 180.0,
                },
                LonRange {
                    west: -180.0,
                    east: self.east,
                },
            ]
        }
    }

    pub fn contains(self, point: GeoPoint) -> bool {
        point.lat >= self.south
            && point.lat <= self.north
            && self
                .lon_ranges()
                .iter()
                .any(|r| point.lon >= r.west && point.lon <= r.east)
    }
}

fn latitude(field: &str, value: f64) -> Result<f64, ValidationError> {
    if !value.is_finite() || !(-90.0..=90.0).contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("latitude must be a number in [-90, 90] (got {value})"),
        ));
    }
    Ok(value)
}

fn longitude(field: &str, value: f64) -> Result<f64, ValidationError> {
    if !value.is_finite() || !(-180.0..=180.0).contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("longitude must be a number in [-180, 180] (got {value})"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_refuse_nan_and_out_of_range() {
        assert_eq!(GeoPoint::new(f64::NAN, 0.0).unwrap_err().field, "lat");
        assert_eq!(GeoPoint::new(0.0, f64::INFINITY).unwrap_err().field, "lon");
        assert_eq!(GeoPoint::new(90.5, 0.0).unwrap_err().field, "lat");
        assert_eq!(GeoPoint::new(0.0, -180.01).unwrap_err().field, "lon");
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn inverted_latitudes_are_refused() {
        assert_eq!(
            GeoBox::new(52.0, 0.0, 51.0, 1.0).unwrap_err().field,
            "south"
        );
    }

    #[test]
    fn a_box_across_the_antimeridian_has_two_ranges() {
        let b = GeoBox::new(-20.0, 170.0, -10.0, -170.0).unwrap();
        assert_eq!(b.lon_ranges().len(), 2);
        assert!(b.contains(GeoPoint::new(-15.0, 179.0).unwrap()));
        assert!(b.contains(GeoPoint::new(-15.0, -179.0).unwrap()));
        assert!(!b.contains(GeoPoint::new(-15.0, 0.0).unwrap()));
    }

    #[test]
    fn distance_of_one_degree_of_latitude() {
        let a = GeoPoint::new(51.0, 0.0).unwrap();
        let b = GeoPoint::new(52.0, 0.0).unwrap();
        assert!((a.distance_m(b) - 111_195.0).abs() < 10.0);
    }
}
