//! What a billing totals query asks for and what each group of its answer holds.

use chrono::NaiveDate;

use super::DayTotals;
use super::calendar::{month_bounds, month_key};

/// How totals are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsGroup {
    Zone,
    Day,
    Month,
    Lamp,
    /// Everything in one row.
    All,
}

/// Totals over `[from, to]` (settlement days, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalsQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group: TotalsGroup,
    pub zone_id: Option<i64>,
    /// Lamp rows returned (biggest consumers first).
    pub limit: usize,
}

/// One group's totals as stored, before savings and labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TotalsRow {
    /// Zone id, lamp id, `YYYY-MM-DD` or `YYYY-MM`, by the grouping.
    pub key: String,
    pub totals: DayTotals,
    pub lamps: u32,
    pub lamps_missing: u32,
    pub missing_slots: i64,
}

impl TotalsRow {
    /// One row adding up `rows` (whose lamps are all different).
    pub fn sum(rows: Vec<TotalsRow>) -> TotalsRow {
        let mut total = TotalsRow {
            key: "0".to_owned(),
            ..TotalsRow::default()
        };
        for row in rows {
            let (t, r) = (&mut total.totals, &row.totals);
            t.wh += r.wh;
            t.cost_mp += r.cost_mp;
            t.baseline_wh += r.baseline_wh;
            t.baseline_cost_mp += r.baseline_cost_mp;
            t.covered_slots = t.covered_slots.saturating_add(r.covered_slots);
            t.unpriced_wh += r.unpriced_wh;
            total.lamps += row.lamps;
            total.lamps_missing += row.lamps_missing;
            total.missing_slots += row.missing_slots;
        }
        total
    }
}

/// A period cut into the months it holds whole (first and last month key) and the runs of
/// days outside them. A month counts as whole from its first day to today or later: no
/// energy is dated after today, so its month row is the month to date (read from one row
/// per lamp, not one per lamp-day).
pub struct Parts {
    pub months: Option<(String, String)>,
    pub days: Vec<(NaiveDate, NaiveDate)>,
}

pub fn split_period(from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Parts {
    let mut months: Option<(String, String)> = None;
    let mut days: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut first = from;
    while first <= to {
        let (month_start, month_end) = month_bounds(first);
        let last = month_end.min(to);
        if first == month_start && (last == month_end || last >= today) {
            let key = month_key(first);
            months = Some(match months {
                Some((start, _)) => (start, key),
                None => (key.clone(), key),
            });
        } else {
            match days.last_mut() {
                Some((_, end)) if end.succ_opt() == Some(first) => *end = last,
                _ => days.push((first, last)),
            }
        }
        let Some(next) = month_end.succ_opt() else {
            break;
        };
        first = next;
    }
    Parts { months, days }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_reads_whole_months_from_their_rollup_and_the_rest_by_day() {
        let day = |m: u32, d: u32| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        let today = day(12, 3);
        let parts = split_period(day(1, 20), day(4, 3), today);
        assert_eq!(parts.months, Some(("2026-02".into(), "2026-03".into())));
        assert_eq!(
            parts.days,
            vec![(day(1, 20), day(1, 31)), (day(4, 1), day(4, 3))]
        );
        let within = split_period(day(5, 2), day(5, 9), today);
        assert_eq!(
            (within.months, within.days),
            (None, vec![(day(5, 2), day(5, 9))])
        );
    }

    #[test]
    fn the_month_to_date_reads_the_month_row_and_an_earlier_part_month_its_days() {
        let day = |m: u32, d: u32| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        let today = day(12, 3);
        let to_date = split_period(day(12, 1), today, today);
        assert_eq!(
            (to_date.months, to_date.days),
            (Some(("2026-12".into(), "2026-12".into())), vec![])
        );
        // The first days of November are not November to date.
        let part = split_period(day(11, 1), day(11, 3), today);
        assert_eq!(
            (part.months, part.days),
            (None, vec![(day(11, 1), day(11, 3))])
        );
        // Nor are the first days of December up to yesterday.
        let yesterday = split_period(day(12, 1), day(12, 2), today);
        assert_eq!(yesterday.days, vec![(day(12, 1), day(12, 2))]);
    }
}
