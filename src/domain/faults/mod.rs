//! Faults: their types and severities (domain.md's table), their lifecycle, the rules that
//! detect them from telemetry, and the tracker that dedups, holds down and spots flapping.

pub mod apply;
pub mod lifecycle;
pub mod record;
pub mod rules;
pub mod shift;
pub mod tracker;

/// What has gone wrong. The names are the TALQ conditions plus our own roll-ups.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FaultType {
    LampFailure,
    DayBurner,
    Cycling,
    NodeOffline,
    SupplyLoss,
    VoltageHigh,
    VoltageLow,
    CurrentHigh,
    CurrentLow,
    PowerHigh,
    PowerLow,
    PowerFactorLow,
    RelayFailure,
    DriverFailure,
    DimmingFailure,
    OverTemperature,
    EarthLeakage,
    TiltOrImpact,
    /// Many lamps of one circuit lost supply at once: one parent fault for the circuit.
    CircuitSupplyLoss,
    /// A basestation went silent: its telecells' NODE_OFFLINE faults are suppressed under it.
    BasestationOffline,
}

/// How bad. Ordered: `Critical > Major > Minor > Warning`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    Warning,
    Minor,
    Major,
    Critical,
}

impl FaultType {
    pub const ALL: [FaultType; 20] = [
        FaultType::LampFailure,
        FaultType::DayBurner,
        FaultType::Cycling,
        FaultType::NodeOffline,
        FaultType::SupplyLoss,
        FaultType::VoltageHigh,
        FaultType::VoltageLow,
        FaultType::CurrentHigh,
        FaultType::CurrentLow,
        FaultType::PowerHigh,
        FaultType::PowerLow,
        FaultType::PowerFactorLow,
        FaultType::RelayFailure,
        FaultType::DriverFailure,
        FaultType::DimmingFailure,
        FaultType::OverTemperature,
        FaultType::EarthLeakage,
        FaultType::TiltOrImpact,
        FaultType::CircuitSupplyLoss,
        FaultType::BasestationOffline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultType::LampFailure => "LAMP_FAILURE",
            FaultType::DayBurner => "DAY_BURNER",
            FaultType::Cycling => "CYCLING",
            FaultType::NodeOffline => "NODE_OFFLINE",
            FaultType::SupplyLoss => "SUPPLY_LOSS",
            FaultType::VoltageHigh => "VOLTAGE_HIGH",
            FaultType::VoltageLow => "VOLTAGE_LOW",
            FaultType::CurrentHigh => "CURRENT_HIGH",
            FaultType::CurrentLow => "CURRENT_LOW",
            FaultType::PowerHigh => "POWER_HIGH",
            FaultType::PowerLow => "POWER_LOW",
            FaultType::PowerFactorLow => "POWER_FACTOR_LOW",
            FaultType::RelayFailure => "RELAY_FAILURE",
            FaultType::DriverFailure => "DRIVER_FAILURE",
            FaultType::DimmingFailure => "DIMMING_FAILURE",
            FaultType::OverTemperature => "OVER_TEMPERATURE",
            FaultType::EarthLeakage => "EARTH_LEAKAGE",
            FaultType::TiltOrImpact => "TILT_OR_IMPACT",
            FaultType::CircuitSupplyLoss => "CIRCUIT_SUPPLY_LOSS",
            FaultType::BasestationOffline => "BASESTATION_OFFLINE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }

    /// Severity when raised (policy, after domain.md).
    pub fn default_severity(self) -> Severity {
        match self {
            FaultType::EarthLeakage
            | FaultType::TiltOrImpact
            | FaultType::CircuitSupplyLoss
            | FaultType::BasestationOffline => Severity::Critical,
            FaultType::LampFailure
            | FaultType::DayBurner
            | FaultType::NodeOffline
            | FaultType::SupplyLoss
            | FaultType::RelayFailure
            | FaultType::DriverFailure => Severity::Major,
            FaultType::Cycling
            | FaultType::CurrentHigh
            | FaultType::CurrentLow
            | FaultType::PowerHigh
            | FaultType::PowerLow
            | FaultType::DimmingFailure
            | FaultType::OverTemperature => Severity::Minor,
            FaultType::VoltageHigh | FaultType::VoltageLow | FaultType::PowerFactorLow => {
                Severity::Warning
            }
        }
    }

    /// Whether the fault clears when its condition goes away; the others need a repair.
    pub fn clears_by_itself(self) -> bool {
        !matches!(
            self,
            FaultType::RelayFailure
                | FaultType::DriverFailure
                | FaultType::EarthLeakage
                | FaultType::TiltOrImpact
        )
    }
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Warning,
        Severity::Minor,
        Severity::Major,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "WARNING",
            Severity::Minor => "MINOR",
            Severity::Major => "MAJOR",
            Severity::Critical => "CRITICAL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_critical_first() {
        assert!(Severity::Critical > Severity::Major);
        assert!(Severity::Major > Severity::Minor);
        assert!(Severity::Minor > Severity::Warning);
    }

    #[test]
    fn table_of_domain_md() {
        assert_eq!(FaultType::LampFailure.default_severity(), Severity::Major);
        assert_eq!(FaultType::VoltageLow.default_severity(), Severity::Warning);
        assert_eq!(
            FaultType::EarthLeakage.default_severity(),
            Severity::Critical
        );
        assert_eq!(FaultType::Cycling.default_severity(), Severity::Minor);
        assert!(!FaultType::RelayFailure.clears_by_itself());
        assert!(!FaultType::TiltOrImpact.clears_by_itself());
        assert!(FaultType::NodeOffline.clears_by_itself());
        for t in FaultType::ALL {
            assert_eq!(FaultType::parse(t.as_str()), Some(t));
        }
    }
}
