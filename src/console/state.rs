//! Everything the console knows, owned by its loop: the fault board with its pinned
//! selection, marks, sort, filter and freeze; the panes; the streams' health; the modes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::inventory::Role;

use super::filter::{Filter, fault_type_name, severity_rank};
use crate::proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Faults,
    Lamps,
    Billing,
}

pub const TABS: [Tab; 3] = [Tab::Faults, Tab::Lamps, Tab::Billing];

impl Tab {
    pub fn title(self) -> &'static str {
        match self {
            Tab::Faults => "1 Faults",
            Tab::Lamps => "2 Lamps",
            Tab::Billing => "3 Billing",
        }
    }
}

/// The server streams the console follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamName {
    Faults,
    Billing,
    Lamp,
}

impl StreamName {
    pub fn label(self) -> &'static str {
        match self {
            StreamName::Faults => "faults",
            StreamName::Billing => "billing",
            StreamName::Lamp => "lamp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    /// Down since `since`; the next attempt is at `retry_at`.
    Down {
        since: DateTime<Utc>,
        retry_at: DateTime<Utc>,
        error: String,
    },
    /// The server refused the session (expired or revoked): only signing in again helps.
    SignedOut {
        since: DateTime<Utc>,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Severity,
    Age,
    Lamp,
    Zone,
    Type,
    State,
    Count,
}

pub const SORT_KEYS: [SortKey; 7] = [
    SortKey::Severity,
    SortKey::Age,
    SortKey::Lamp,
    SortKey::Zone,
    SortKey::Type,
    SortKey::State,
    SortKey::Count,
];

impl SortKey {
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Severity => "severity",
            SortKey::Age => "age",
            SortKey::Lamp => "lamp",
            SortKey::Zone => "zone",
            SortKey::Type => "type",
            SortKey::State => "state",
            SortKey::Count => "count",
        }
    }
}

/// What a prompt's text is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFor {
    Note(Vec<i64>),
    Assign(Vec<i64>),
    FindLamp,
    /// Signing in again after the session ended; what is typed is never drawn.
    Password,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a filter; the board shows the last valid one meanwhile.
    Filter {
        text: String,
        error: Option<String>,
    },
    Command {
        text: String,
        history_at: Option<usize>,
    },
    Prompt {
        for_: PromptFor,
        text: String,
    },
}

/// Feed changes held back while the operator has the board frozen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frozen {
    pub held: Vec<proto::FaultEvent>,
    pub new: BTreeSet<i64>,
    pub changed: BTreeSet<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub fault_id: i64,
    pub history: Vec<proto::HistoryEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingPeriod {
    MonthToDate,
    Today,
    LastMonth,
    /// A month asked for with `:bill 2026-10`.
    Month(NaiveDate),
    /// Days asked for with `:bill 2026-10-01..2026-10-15`.
    Range(NaiveDate, NaiveDate),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LampPane {
    pub query: String,
    pub lamp: Option<proto::Lamp>,
    pub status: Option<proto::LampStatus>,
    /// Lamps of the zone the lamp is in (or that was asked for), by id.
    pub zone_lamps: BTreeMap<i64, proto::LampStatus>,
    pub zone_points: BTreeMap<i64, (f64, f64)>,
    pub zone_id: i64,
}

pub struct State {
    pub tab: Tab,
    pub mode: Mode,
    pub tz: Tz,
    pub now: DateTime<Utc>,
    pub server: String,
    pub user: String,
    /// The signed-in user's role: triage keys the role may not use say so instead of sending.
    pub role: Option<Role>,
    /// Active faults by id (resolved ones, and cleared ones already acknowledged, leave).
    pub faults: BTreeMap<i64, proto::Fault>,
    pub zones: HashMap<i64, String>,
    pub last_seq: u64,
    /// The fault the cursor is on: kept by id, so live updates never move it to another.
    pub selected: Option<i64>,
    /// Where the selection was in the list, to continue from if its fault leaves.
    pub selected_index: usize,
    pub marks: BTreeSet<i64>,
    pub sort: SortKey,
    pub descending: bool,
    pub filter: Filter,
    pub filter_text: String,
    pub frozen: Option<Frozen>,
    pub detail: Option<Detail>,
    /// Board rows in display order; rebuilt when `view_dirty`.
    pub view: Vec<i64>,
    pub view_dirty: bool,
    pub page_rows: usize,
    pub daily_date: Option<NaiveDate>,
    pub daily: Option<proto::DailyFaultsResponse>,
    pub lamps: LampPane,
    pub billing_live: Option<proto::LiveTotals>,
    pub billing_period: BillingPeriod,
    pub billing_totals: Option<proto::Totals>,
    /// One lamp's half-hours, asked for with `:bill lamp 12`.
    pub billing_lamp: Option<proto::LampEnergy>,
    pub streams: BTreeMap<StreamName, Link>,
    /// When fault events arrived, for the rate in the status bar.
    pub arrivals: VecDeque<DateTime<Utc>>,
    pub command_history: Vec<String>,
    pub message: Option<(DateTime<Utc>, String)>,
    pub quit: bool,
}

impl State {
    pub fn new(server: String, user: String, tz: Tz, now: DateTime<Utc>) -> Self {
        Self {
            tab: Tab::Faults,
            mode: Mode::Normal,
            tz,
            now,
            server,
            user,
            role: None,
            faults: BTreeMap::new(),
            zones: HashMap::new(),
            last_seq: 0,
            selected: None,
            selected_index: 0,
            marks: BTreeSet::new(),
            sort: SortKey::Severity,
            descending: true,
            filter: Filter::default(),
            filter_text: String::new(),
            frozen: None,
            detail: None,
            view: Vec::new(),
            view_dirty: true,
            page_rows: 20,
            daily_date: None,
            daily: None,
            lamps: LampPane::default(),
            billing_live: None,
            billing_period: BillingPeriod::MonthToDate,
            billing_totals: None,
            billing_lamp: None,
            streams: BTreeMap::from([
                (StreamName::Faults, Link::Connecting),
                (StreamName::Billing, Link::Connecting),
            ]),
            arrivals: VecDeque::new(),
            command_history: Vec::new(),
            message: None,
            quit: false,
        }
    }

    pub fn zone_name(&self, zone_id: i64) -> &str {
        self.zones.get(&zone_id).map_or("", String::as_str)
    }

    /// Whether the faults stream is live, so actions may be sent.
    /// Whether the signed-in role may triage (unknown role: let the server decide).
    pub fn may_triage(&self) -> bool {
        self.role.is_none_or(|role| {
            crate::domain::auth::access("/singularity.v1.Faults/Acknowledge").allows(role)
        })
    }

    pub fn connected(&self) -> bool {
        self.streams.get(&StreamName::Faults) == Some(&Link::Live)
    }

    /// Rebuilds the board's row order if anything it depends on changed.
    pub fn refresh_view(&mut self) {
        if !self.view_dirty {
            return;
        }
        self.view_dirty = false;
        let mut rows: Vec<&proto::Fault> = self
            .faults
            .values()
            .filter(|f| self.filter.matches(f, self.zone_name(f.zone_id)))
            .collect();
        let zone = |f: &proto::Fault| self.zone_name(f.zone_id).to_owned();
        match self.sort {
            SortKey::Severity => rows.sort_by_key(|f| {
                (
                    severity_rank(f.severity),
                    std::cmp::Reverse(f.first_seen.as_ref().map_or(0, |t| t.seconds)),
                )
            }),
            SortKey::Age => rows
                .sort_by_key(|f| std::cmp::Reverse(f.first_seen.as_ref().map_or(0, |t| t.seconds))),
            SortKey::Lamp => rows.sort_by_key(|f| f.lamp_id),
            SortKey::Zone => rows.sort_by_cached_key(|f| zone(f)),
            SortKey::Type => rows.sort_by_key(|f| fault_type_name(f.r#type)),
            SortKey::State => rows.sort_by_key(|f| f.state),
            SortKey::Count => rows.sort_by_key(|f| f.count),
        }
        if self.descending {
            rows.reverse();
        }
        self.view = rows.iter().map(|f| f.id).collect();
        if let Some(id) = self.selected
            && let Some(index) = self.view.iter().position(|v| *v == id)
        {
            self.selected_index = index;
        }
    }

    /// The selected fault's row in the current view, if it is shown.
    pub fn selected_row(&self) -> Option<usize> {
        let id = self.selected?;
        if self.view.get(self.selected_index) == Some(&id) {
            return Some(self.selected_index);
        }
        self.view.iter().position(|v| *v == id)
    }

    /// The faults an action applies to: the marked ones, else the selected one.
    pub fn targets(&self) -> Vec<i64> {
        if self.marks.is_empty() {
            self.selected.into_iter().collect()
        } else {
            self.marks.iter().copied().collect()
        }
    }

    /// Fault events per minute over the last minute.
    pub fn event_rate(&self) -> usize {
        self.arrivals.len()
    }

    pub fn say(&mut self, message: impl Into<String>) {
        self.message = Some((self.now, message.into()));
    }
}

/// Whether a fault belongs on the board.
pub fn on_board(fault: &proto::Fault) -> bool {
    let state = proto::FaultState::try_from(fault.state).unwrap_or(proto::FaultState::Unspecified);
    match state {
        proto::FaultState::Resolved => false,
        proto::FaultState::Cleared => !fault.acknowledged,
        _ => true,
    }
}
