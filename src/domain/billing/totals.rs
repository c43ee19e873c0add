//! What a billing totals query asks for and what each group of its answer holds.

use chrono::NaiveDate;

use super::DayTotals;

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
