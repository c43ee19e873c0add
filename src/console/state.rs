//! Everything the console knows, owned by its loop: the fault board with its pinned
//! selection, marks, sort, filter and freeze; the panes; the streams' health; the modes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

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

/// What the terminal must do besides drawing; the loop writes these out after each update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The terminal bell (`--bell`, `:set bell`).
    Bell,
    /// The window title, which a terminal shows even in another tab or window.
    Title(String),
    /// Text for the operator's clipboard, by OSC 52 (works over SSH and through tmux).
    Copy(String),
}

/// How the board clusters its rows, besides the sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Off,
    Circuit,
    Zone,
}

impl Grouping {
    pub fn next(self) -> Self {
        match self {
            Grouping::Off => Grouping::Circuit,
            Grouping::Circuit => Grouping::Zone,
            Grouping::Zone => Grouping::Off,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Grouping::Off => "off",
            Grouping::Circuit => "circuit",
            Grouping::Zone => "zone",
        }
    }
}

/// The faults a triage key acts on, each with the version on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    pub ids: Vec<(i64, i64)>,
    /// Marked faults the filter hides, left alone.
    pub hidden: usize,
    /// Whether these are the marked faults (a bulk action) rather than the selected one.
    pub bulk: bool,
    /// Lamp faults on the board under the roll-ups among `ids`: the action reaches them too.
    pub children: usize,
}

/// A triage action waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub verb: Verb,
    pub targets: Targets,
    pub text: String,
}

/// Why the selected fault is not on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftView {
    /// The operator's filter hides it; the cursor moved to a row that is shown.
    Hidden(i64),
    /// It left the board (resolved, or cleared and acknowledged); the cursor stays put so
    /// no key lands on a fault the operator did not choose.
    Gone(i64),
}

/// What a prompt's text is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFor {
    Note(Targets),
    Assign(Targets),
    FindLamp,
    /// Signing in again after the session ended; what is typed is never drawn.
    Password,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// The keys, scrolled this many lines.
    Help {
        scroll: usize,
    },
    /// The shift's handover (`State::handover`), scrolled this many lines.
    Handover {
        scroll: usize,
    },
    /// Typing a filter: the board previews it while it is valid and shows the filter from
    /// before the edit (`before`, restored by esc) while it is not.
    Filter {
        text: String,
        error: Option<String>,
        before: String,
    },
    /// A bulk action or a resolve, waiting for y or n.
    Confirm(Confirm),
    /// Claiming a fault another operator holds, waiting for y or n.
    TakeOver {
        fault_id: i64,
        holder: String,
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

/// The open fault: the fault and its history, both kept live from the feed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detail {
    pub fault_id: i64,
    pub fault: Option<proto::Fault>,
    pub history: Vec<proto::HistoryEntry>,
    /// Whether the history was read from the server (until then only live entries show).
    pub loaded: bool,
    /// Older entries the server left out of a long history (its reply is bounded).
    pub omitted: u64,
    /// First line shown of the scrollable part.
    pub scroll: usize,
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
    /// The lamp is followed for the open fault detail (its stream closes with the detail).
    pub for_detail: bool,
    /// The lamp asked for last, so a slower earlier answer does not replace it.
    pub wanted: Option<i64>,
    /// Why the last lookup found nothing (not found, or the lookup failed).
    pub failed: Option<String>,
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
    /// Why the selected fault is not on screen, if it is not.
    pub left_view: Option<LeftView>,
    /// Since when the fault feed has been live (None while it is not).
    pub live_since: Option<DateTime<Utc>>,
    /// The board takes the whole tab (Daily Faults hidden).
    pub zoom: bool,
    pub marks: BTreeSet<i64>,
    /// Roll-ups shown with their lamp faults under them (the rest are one folded row).
    pub expanded: BTreeSet<i64>,
    /// Lamp faults on the board under each roll-up on the board; rebuilt with the view.
    pub children: HashMap<i64, Vec<i64>>,
    pub grouping: Grouping,
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
    /// Filters typed before, oldest first (`/` then up).
    pub filter_history: Vec<String>,
    pub message: Option<(DateTime<Utc>, String)>,
    pub quit: bool,
    /// Ring the bell and flash the title on each new CRITICAL.
    pub bell: bool,
    /// CRITICAL faults raised (or re-opened, or escalated) since the operator last pressed a
    /// key on the board.
    pub unseen_critical: usize,
    /// Terminal effects waiting for the loop.
    pub effects: Vec<Effect>,
    /// When each pane's data last arrived, for "2 m old" and stale marks.
    pub feed_at: Option<DateTime<Utc>>,
    pub billing_at: Option<DateTime<Utc>>,
    pub lamp_at: Option<DateTime<Utc>>,
    /// Who has which fault open or claimed, from the server's presence stream.
    pub presence: HashMap<i64, proto::FaultPresence>,
    /// The server's last refusal of this console's claim, so it is said once.
    pub claim_refused: String,
    /// The last handover asked for (`:handover`).
    pub handover: Option<proto::HandoverResponse>,
    /// The fault this console last told the others it is on (0: none).
    pub viewing_sent: i64,
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
            left_view: None,
            live_since: None,
            zoom: false,
            marks: BTreeSet::new(),
            expanded: BTreeSet::new(),
            children: HashMap::new(),
            grouping: Grouping::Off,
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
            filter_history: Vec::new(),
            message: None,
            quit: false,
            bell: false,
            unseen_critical: 0,
            effects: Vec::new(),
            feed_at: None,
            billing_at: None,
            lamp_at: None,
            presence: HashMap::new(),
            claim_refused: String::new(),
            handover: None,
            viewing_sent: 0,
        }
    }

    pub fn zone_name(&self, zone_id: i64) -> &str {
        self.zones.get(&zone_id).map_or("", String::as_str)
    }

    /// Whether the signed-in role may triage (unknown role: let the server decide).
    pub fn may_triage(&self) -> bool {
        self.role.is_none_or(|role| {
            crate::domain::auth::access("/singularity.v1.Faults/Acknowledge").allows(role)
        })
    }

    /// Whether the faults stream is live, so actions may be sent.
    pub fn connected(&self) -> bool {
        self.streams.get(&StreamName::Faults) == Some(&Link::Live)
    }

    /// Rebuilds the board's row order if anything it depends on changed, and keeps the
    /// cursor on a row the operator can see (see `LeftView`).
    pub fn refresh_view(&mut self) {
        if self.view_dirty {
            self.view_dirty = false;
            self.order_rows();
        }
        self.place_cursor();
    }

    fn place_cursor(&mut self) {
        // A fault the filter hid comes back under the cursor when it is shown again.
        if let Some(LeftView::Hidden(hidden)) = self.left_view
            && let Some(index) = self.view.iter().position(|v| *v == hidden)
        {
            self.selected = Some(hidden);
            self.selected_index = index;
            self.left_view = None;
            return;
        }
        let Some(id) = self.selected else {
            // The first row is selected as soon as there is one.
            if let Some(first) = self.view.first() {
                self.selected = Some(*first);
                self.selected_index = 0;
            }
            return;
        };
        if self.view.get(self.selected_index) == Some(&id) {
            return;
        }
        // A lamp fault folded under its roll-up: the cursor rests on the roll-up.
        if let Some(parent) = self.folded_under(id)
            && let Some(index) = self.view.iter().position(|v| *v == parent)
        {
            self.selected = Some(parent);
            self.selected_index = index;
            return;
        }
        if let Some(index) = self.view.iter().position(|v| *v == id) {
            self.selected_index = index;
            if self.left_view == Some(LeftView::Gone(id)) {
                self.left_view = None;
            }
        } else if self.faults.contains_key(&id) {
            // Hidden by the filter: the cursor goes to the nearest row that is shown (and
            // back to this fault if the filter shows it again).
            self.left_view = Some(LeftView::Hidden(id));
            if !self.view.is_empty() {
                self.selected_index = self.selected_index.min(self.view.len() - 1);
                self.selected = Some(self.view[self.selected_index]);
            }
        } else if self.left_view.is_none() {
            self.left_view = Some(LeftView::Gone(id));
        }
    }

    /// Rows in display order: the sort (within groups, when grouped), each roll-up followed
    /// by its lamp faults when expanded. A lamp fault folds under its roll-up only while the
    /// roll-up is on the board and shown; otherwise it is a row of its own, so a child that
    /// arrives before its parent, or a filter that shows only lamp faults, never loses it.
    fn order_rows(&mut self) {
        let shown: Vec<&proto::Fault> = self
            .faults
            .values()
            .filter(|f| self.passes_filter(f))
            .collect();
        let shown_ids: HashSet<i64> = shown.iter().map(|f| f.id).collect();
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for fault in self.faults.values() {
            if fault.parent_id > 0 && self.faults.contains_key(&fault.parent_id) {
                children.entry(fault.parent_id).or_default().push(fault.id);
            }
        }
        let (mut nested, mut top): (Vec<&proto::Fault>, Vec<&proto::Fault>) = shown
            .into_iter()
            .partition(|f| f.parent_id > 0 && shown_ids.contains(&f.parent_id));
        self.sort_rows(&mut top);
        match self.grouping {
            Grouping::Off => {}
            // Stable: the sort holds within each group.
            Grouping::Zone => top.sort_by_cached_key(|f| group_key(self.zone_name(f.zone_id))),
            Grouping::Circuit => top.sort_by_key(|f| (f.circuit_id == 0, f.circuit_id)),
        }
        self.sort_rows(&mut nested);
        let mut under: HashMap<i64, Vec<i64>> = HashMap::new();
        for child in nested {
            under.entry(child.parent_id).or_default().push(child.id);
        }
        let mut view = Vec::with_capacity(top.len());
        for fault in top {
            view.push(fault.id);
            if self.expanded.contains(&fault.id)
                && let Some(rows) = under.get(&fault.id)
            {
                view.extend(rows);
            }
        }
        self.view = view;
        self.expanded.retain(|id| children.contains_key(id));
        self.children = children;
    }

    fn sort_rows(&self, rows: &mut [&proto::Fault]) {
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
    }

    /// The shown roll-up a fault is folded under, if it is folded.
    pub fn folded_under(&self, id: i64) -> Option<i64> {
        let parent = self.faults.get(&id)?.parent_id;
        (parent > 0
            && !self.expanded.contains(&parent)
            && self
                .faults
                .get(&parent)
                .is_some_and(|p| self.passes_filter(p))
            && self.faults.get(&id).is_some_and(|f| self.passes_filter(f)))
        .then_some(parent)
    }

    /// Who holds a claim on the fault, if anyone.
    pub fn claimed_by(&self, id: i64) -> Option<&str> {
        self.presence
            .get(&id)
            .map(|p| p.claimed_by.as_str())
            .filter(|user| !user.is_empty())
    }

    /// Lamp faults on the board under a roll-up.
    pub fn child_count(&self, id: i64) -> usize {
        self.children.get(&id).map_or(0, Vec::len)
    }

    /// Whether a fault is on the board and the filter shows it: what keys may act on. A
    /// lookup, not a search of the view, so it stays cheap with 100,000 faults.
    pub fn is_shown(&self, id: i64) -> bool {
        self.faults.get(&id).is_some_and(|f| self.passes_filter(f))
    }

    fn passes_filter(&self, fault: &proto::Fault) -> bool {
        self.filter.matches(fault, self.zone_name(fault.zone_id))
    }

    /// The selected fault's row in the current view, if it is shown.
    pub fn selected_row(&self) -> Option<usize> {
        let id = self.selected?;
        if self.view.get(self.selected_index) == Some(&id) {
            return Some(self.selected_index);
        }
        self.view.iter().position(|v| *v == id)
    }

    /// Fault events per minute over the last minute.
    pub fn event_rate(&self) -> usize {
        self.arrivals.len()
    }

    /// Whether the operator has the fault board in front of them.
    pub fn on_the_board(&self) -> bool {
        self.tab == Tab::Faults && self.detail.is_none()
    }

    /// The window title: the badge while CRITICAL faults wait unseen.
    pub fn title(&self) -> String {
        match self.unseen_critical {
            0 => format!("singularity {}", self.server),
            n => format!("(+{n} critical) singularity {}", self.server),
        }
    }

    pub fn say(&mut self, message: impl Into<String>) {
        self.message = Some((self.now, message.into()));
    }
}

/// Zones sort by name, faults without one last.
fn group_key(zone: &str) -> (bool, String) {
    (zone.is_empty(), zone.to_owned())
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

/// What an operator does to faults, as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Acknowledge,
    Assign,
    Resolve,
    Note,
}

impl Verb {
    pub fn past(self) -> &'static str {
        match self {
            Verb::Acknowledge => "acknowledged",
            Verb::Assign => "assigned",
            Verb::Resolve => "resolved",
            Verb::Note => "noted",
        }
    }

    pub fn present(self) -> &'static str {
        match self {
            Verb::Acknowledge => "acknowledge",
            Verb::Assign => "assign",
            Verb::Resolve => "resolve",
            Verb::Note => "add a note to",
        }
    }
}
