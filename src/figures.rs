//! Figures as people read them, the same in the CLI and the console: money to the penny,
//! energy with its unit, the share of half-hours with data, a saving as a share.

use crate::proto;

/// Pounds from milli-pence, to the penny: -1234567 mp is "-£12.35".
pub fn pounds(millipence: i64) -> String {
    let pence = (millipence.abs() + 500) / 1000;
    let sign = if millipence < 0 { "-" } else { "" };
    format!("{sign}£{}.{:02}", pence / 100, pence % 100)
}

/// Kilowatt-hours from watt-hours, one decimal.
pub fn kwh(wh: i64) -> String {
    format!("{:.1}", wh as f64 / 1000.0)
}

/// Energy with its unit, in Wh where kWh would round to nothing: "4151.7 kWh", "45 Wh".
pub fn energy(wh: i64) -> String {
    if wh.abs() < 1_000 {
        format!("{wh} Wh")
    } else {
        format!("{} kWh", kwh(wh))
    }
}

/// The share of the half-hours due that the lamps' reports account for, which is what the
/// energy, the baseline and so the saving cover: "100%", "8%", "-" when none were due.
pub fn covered(row: &proto::TotalsRow, expected_slots: u32) -> String {
    let due = i64::from(row.lamps) * i64::from(expected_slots);
    if due <= 0 {
        return "-".to_owned();
    }
    let share = (due - row.missing_slots).clamp(0, due) as f64 * 100.0 / due as f64;
    // Never "100%" while anything is missing, never "0%" while anything is there.
    let shown = match share {
        s if s > 99.0 && s < 100.0 => 99,
        s if s > 0.0 && s < 1.0 => 1,
        s => s.round() as i64,
    };
    format!("{shown}%")
}

/// A saving as a share of the baseline it is measured against ("-" without a baseline).
pub fn saved_share(row: &proto::TotalsRow) -> String {
    if row.baseline_wh > 0 {
        let pct = (row.savings_wh as f64 * 100.0 / row.baseline_wh as f64).round();
        format!("{}%", pct as i64)
    } else {
        "-".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_energy_read_plainly() {
        assert_eq!(pounds(1_234_567), "£12.35");
        assert_eq!(pounds(-1_234_567), "-£12.35");
        assert_eq!(pounds(0), "£0.00");
        assert_eq!(kwh(12_345), "12.3");
    }

    #[test]
    fn small_energy_reads_in_wh_and_coverage_never_rounds_to_whole() {
        assert_eq!(energy(45), "45 Wh");
        assert_eq!(energy(-12), "-12 Wh");
        assert_eq!(energy(4_151_700), "4151.7 kWh");
        let row = |missing_slots| proto::TotalsRow {
            lamps: 100,
            missing_slots,
            ..Default::default()
        };
        assert_eq!(covered(&row(0), 48), "100%");
        assert_eq!(covered(&row(1), 48), "99%");
        assert_eq!(covered(&row(4_799), 48), "1%");
        assert_eq!(covered(&row(4_800), 48), "0%");
        assert_eq!(covered(&row(2_400), 48), "50%");
        assert_eq!(covered(&row(0), 0), "-");
    }
}
