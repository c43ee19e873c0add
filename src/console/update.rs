//! `update(state, event) -> commands`: the one place the console's state changes. Keys become
//! actions through the keymap; network events fold into the board and panes; what needs the
//! network comes back as commands for the loop to hand to its tasks.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::filter::Filter;
use super::keymap::{Action, Key, KeyName, Keymap};
use super::state::{
    BillingPeriod, Detail, Frozen, Link, Mode, PromptFor, SORT_KEYS, State, StreamName, TABS, Tab,
    on_board,
};
use crate::proto;

/// Everything that reaches the loop.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "each event is moved once into update; boxing would only add an allocation"
)]
pub enum Event {
    Key(Key),
    /// Time passes (clock, ages, stale markers, reconnect countdowns).
    Tick(DateTime<Utc>),
    /// The terminal was resized; the next frame has this many board rows.
    Resize(usize),
    Net(NetEvent),
}

/// What the network tasks report.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    Link(StreamName, Link),
    /// The active faults as of `seq`: the board is replaced (first connect, or a resync).
    Snapshot {
        faults: Vec<proto::Fault>,
        seq: u64,
    },
    Fault(proto::FaultEvent),
    Zones(Vec<proto::Zone>),
    Detail(proto::FaultDetail),
    /// A triage action was applied.
    Done {
        verb: &'static str,
        fault: proto::Fault,
    },
    /// A triage action was refused: why, and the fault as it now is if it was stale.
    Refused {
        verb: &'static str,
        fault_id: i64,
        message: String,
        current: Option<proto::Fault>,
    },
    Daily(proto::DailyFaultsResponse),
    Lamp(proto::Lamp),
    LampStatus(proto::LampStatus),
    /// A zone asked for by name.
    ZoneFound(i64),
    ZoneLamps {
        zone_id: i64,
        points: Vec<(i64, f64, f64)>,
    },
    LiveTotals(proto::LiveTotals),
    LampEnergy(proto::LampEnergy),
    Totals(proto::Totals),
    Failed(String),
    /// Signed in again: the streams resume by themselves.
    SignedIn,
    SignInRefused(String),
}

/// Work for the network tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Act {
        verb: Verb,
        fault_id: i64,
        version: i64,
        text: String,
    },
    LoadDetail(i64),
    Daily(NaiveDate),
    /// A lamp id, a telecell uuid or a zone name.
    FindLamp(String),
    WatchLamp(i64),
    WatchZone(i64),
    Totals {
        from: NaiveDate,
        to: NaiveDate,
    },
    LampEnergy {
        lamp_id: i64,
        date: NaiveDate,
    },
    /// Signs in again as the console's user.
    SignIn {
        password: String,
    },
}

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
}

/// Commands the console understands after `:`, for completion.
pub const COMMANDS: &[&str] = &[
    "ack", "bill", "help", "lamp", "login", "q", "quit", "resolve", "tz", "zone",
];

pub fn update(state: &mut State, keymap: &Keymap, event: Event) -> Vec<Command> {
    match event {
        Event::Tick(now) => {
            state.now = now;
            while state
                .arrivals
                .front()
                .is_some_and(|t| now - *t > Duration::minutes(1))
            {
                state.arrivals.pop_front();
            }
            Vec::new()
        }
        Event::Resize(rows) => {
            state.page_rows = rows.max(1);
            Vec::new()
        }
        Event::Net(net) => on_net(state, net),
        Event::Key(key) => on_key(state, keymap, key),
    }
}

fn on_net(state: &mut State, event: NetEvent) -> Vec<Command> {
    match event {
        NetEvent::Link(stream, link) => {
            let signed_out = matches!(link, Link::SignedOut { .. });
            let newly =
                signed_out && !matches!(state.streams.get(&stream), Some(Link::SignedOut { .. }));
            state.streams.insert(stream, link);
            if newly && stream == StreamName::Faults && matches!(state.mode, Mode::Normal) {
                ask_password(state);
            }
        }
        NetEvent::SignedIn => {
            state.say(format!("signed in again as {}", state.user));
        }
        NetEvent::SignInRefused(message) => {
            state.say(format!("sign-in refused: {message}; :login to try again"));
        }
        NetEvent::Snapshot { faults, seq } => {
            state.faults = faults
                .into_iter()
                .filter(on_board)
                .map(|f| (f.id, f))
                .collect();
            state.last_seq = seq;
            state.frozen = state.frozen.take().map(|_| Frozen::default());
            state.view_dirty = true;
        }
        NetEvent::Fault(event) => {
            if event.seq <= state.last_seq {
                return Vec::new();
            }
            state.last_seq = event.seq;
            state.arrivals.push_back(state.now);
            if let Some(frozen) = &mut state.frozen {
                if let Some(fault) = &event.fault {
                    if state.faults.contains_key(&fault.id) {
                        frozen.changed.insert(fault.id);
                    } else {
                        frozen.new.insert(fault.id);
                    }
                }
                frozen.held.push(event);
                return Vec::new();
            }
            apply(state, event);
        }
        NetEvent::Zones(zones) => {
            state.zones = zones.into_iter().map(|z| (z.id, z.name)).collect();
            state.view_dirty = true;
        }
        NetEvent::Detail(detail) => {
            if let (Some(open), Some(fault)) = (&mut state.detail, &detail.fault)
                && open.fault_id == fault.id
            {
                open.history = detail.history;
            }
        }
        NetEvent::Done { verb, fault } => {
            state.say(format!("fault {} {verb}", fault.id));
            state.marks.remove(&fault.id);
            upsert(state, fault);
        }
        NetEvent::Refused {
            verb,
            fault_id,
            message,
            current,
        } => {
            let now_is = current.as_ref().map(|f| {
                format!(
                    " (now {} v{}{})",
                    state_name(f.state),
                    f.version,
                    if f.assignee.is_empty() {
                        String::new()
                    } else {
                        format!(", assigned to {}", f.assignee)
                    }
                )
            });
            state.say(format!(
                "not {verb}: fault {fault_id} {message}{}",
                now_is.unwrap_or_default()
            ));
            if let Some(fault) = current {
                upsert(state, fault);
            }
        }
        NetEvent::Daily(daily) => state.daily = Some(daily),
        NetEvent::ZoneFound(zone_id) => {
            state.lamps.lamp = None;
            state.lamps.status = None;
            state.lamps.zone_lamps.clear();
            state.lamps.zone_points.clear();
            state.lamps.zone_id = zone_id;
            return vec![Command::WatchZone(zone_id)];
        }
        NetEvent::Lamp(lamp) => {
            let commands = vec![Command::WatchLamp(lamp.id)];
            state.lamps.status = None;
            if lamp.zone_id != state.lamps.zone_id {
                state.lamps.zone_lamps.clear();
                state.lamps.zone_points.clear();
            }
            state.lamps.zone_id = lamp.zone_id;
            state.lamps.lamp = Some(lamp);
            return commands;
        }
        NetEvent::LampStatus(status) => {
            if state
                .lamps
                .lamp
                .as_ref()
                .is_some_and(|l| l.id == status.lamp_id)
            {
                state.lamps.status = Some(status);
            }
            state.lamps.zone_lamps.insert(status.lamp_id, status);
        }
        NetEvent::ZoneLamps { zone_id, points } => {
            state.lamps.zone_id = zone_id;
            state.lamps.zone_points = points
                .into_iter()
                .map(|(id, lat, lon)| (id, (lat, lon)))
                .collect();
        }
        NetEvent::LiveTotals(live) => state.billing_live = Some(live),
        NetEvent::LampEnergy(energy) => state.billing_lamp = Some(energy),
        NetEvent::Totals(totals) => state.billing_totals = Some(totals),
        NetEvent::Failed(message) => state.say(message),
    }
    Vec::new()
}

fn apply(state: &mut State, event: proto::FaultEvent) {
    if let Some(fault) = event.fault {
        upsert(state, fault);
    }
}

fn upsert(state: &mut State, fault: proto::Fault) {
    if on_board(&fault) {
        state.faults.insert(fault.id, fault);
    } else {
        state.faults.remove(&fault.id);
        state.marks.remove(&fault.id);
    }
    state.view_dirty = true;
}

pub fn state_name(state: i32) -> &'static str {
    match proto::FaultState::try_from(state) {
        Ok(proto::FaultState::Open) => "OPEN",
        Ok(proto::FaultState::Acknowledged) => "ACKED",
        Ok(proto::FaultState::Assigned) => "ASSIGNED",
        Ok(proto::FaultState::Cleared) => "CLEARED",
        Ok(proto::FaultState::Resolved) => "RESOLVED",
        _ => "?",
    }
}

fn on_key(state: &mut State, keymap: &Keymap, key: Key) -> Vec<Command> {
    match state.mode.clone() {
        Mode::Help => {
            state.mode = Mode::Normal;
            if keymap.action(key) == Some(Action::Quit) {
                state.quit = true;
            }
            Vec::new()
        }
        Mode::Filter { text, .. } => edit_filter(state, key, text),
        Mode::Command { text, history_at } => edit_command(state, key, text, history_at),
        Mode::Prompt { for_, text } => edit_prompt(state, key, for_, text),
        Mode::Normal => match keymap.action(key) {
            Some(action) => act(state, action),
            None => Vec::new(),
        },
    }
}

/// Text editing shared by every line: Some(new text), or None when the key is not an edit.
fn edit(text: &str, key: Key) -> Option<String> {
    match key.code {
        KeyName::Backspace => {
            let mut t = text.to_owned();
            t.pop();
            Some(t)
        }
        KeyName::Char('u') if key.ctrl => Some(String::new()),
        KeyName::Char(c) if !key.ctrl && !key.alt => Some(format!("{text}{c}")),
        _ => None,
    }
}

fn edit_filter(state: &mut State, key: Key, text: String) -> Vec<Command> {
    match key.code {
        KeyName::Esc => state.mode = Mode::Normal,
        KeyName::Enter => {
            if let Ok(filter) = Filter::parse(&text) {
                state.filter = filter;
                state.filter_text = text;
                state.view_dirty = true;
                state.mode = Mode::Normal;
            }
        }
        _ => {
            if let Some(text) = edit(&text, key) {
                // Applied as typed when valid; an invalid filter leaves the last valid one.
                let error = match Filter::parse(&text) {
                    Ok(filter) => {
                        state.filter = filter;
                        state.filter_text = text.clone();
                        state.view_dirty = true;
                        None
                    }
                    Err(e) => Some(e),
                };
                state.mode = Mode::Filter { text, error };
            }
        }
    }
    Vec::new()
}

fn edit_command(
    state: &mut State,
    key: Key,
    text: String,
    history_at: Option<usize>,
) -> Vec<Command> {
    match key.code {
        KeyName::Esc => state.mode = Mode::Normal,
        KeyName::Enter => {
            state.mode = Mode::Normal;
            if !text.trim().is_empty() {
                state.command_history.push(text.clone());
            }
            return run_command(state, &text);
        }
        KeyName::Tab => {
            let candidates: Vec<&str> = COMMANDS
                .iter()
                .copied()
                .filter(|c| c.starts_with(text.trim()))
                .collect();
            match candidates.as_slice() {
                [only] => {
                    state.mode = Mode::Command {
                        text: format!("{only} "),
                        history_at,
                    }
                }
                [] => state.say(format!("no command starts with {:?}", text.trim())),
                many => state.say(format!("commands: {}", many.join(" "))),
            }
        }
        KeyName::Up | KeyName::Down => {
            let len = state.command_history.len();
            if len > 0 {
                let at = match (key.code, history_at) {
                    (KeyName::Up, None) => len - 1,
                    (KeyName::Up, Some(i)) => i.saturating_sub(1),
                    (_, None) => return Vec::new(),
                    (_, Some(i)) => (i + 1).min(len - 1),
                };
                let text = state.command_history[at].clone();
                state.mode = Mode::Command {
                    text,
                    history_at: Some(at),
                };
            }
        }
        _ => {
            if let Some(text) = edit(&text, key) {
                state.mode = Mode::Command { text, history_at };
            }
        }
    }
    Vec::new()
}

fn edit_prompt(state: &mut State, key: Key, for_: PromptFor, text: String) -> Vec<Command> {
    match key.code {
        KeyName::Esc => {
            state.mode = Mode::Normal;
            Vec::new()
        }
        KeyName::Enter => {
            state.mode = Mode::Normal;
            match for_ {
                PromptFor::Note(ids) => triage(state, Verb::Note, &ids, text),
                PromptFor::Assign(ids) => triage(state, Verb::Assign, &ids, text),
                PromptFor::FindLamp => find_lamp(state, text),
                PromptFor::Password if text.is_empty() => Vec::new(),
                PromptFor::Password => vec![Command::SignIn { password: text }],
            }
        }
        _ => {
            if let Some(text) = edit(&text, key) {
                state.mode = Mode::Prompt { for_, text };
            }
            Vec::new()
        }
    }
}

/// The session ended: asks for the password to sign in again (esc leaves it; `:login`
/// asks again).
fn ask_password(state: &mut State) {
    state.mode = Mode::Prompt {
        for_: PromptFor::Password,
        text: String::new(),
    };
}

fn find_lamp(state: &mut State, query: String) -> Vec<Command> {
    let query = query.trim().to_owned();
    if query.is_empty() {
        return Vec::new();
    }
    state.tab = Tab::Lamps;
    state.lamps.query = query.clone();
    vec![Command::FindLamp(query)]
}

fn say_read_only(state: &mut State) {
    let role = state.role.map_or("this", |r| r.as_str());
    state.say(format!("read-only: the {role} role may not triage faults"));
}

/// Sends an action for each fault with the version the operator sees for it.
fn triage(state: &mut State, verb: Verb, ids: &[i64], text: String) -> Vec<Command> {
    if !state.may_triage() {
        say_read_only(state);
        return Vec::new();
    }
    if !state.connected() {
        state.say("disconnected: actions wait until the feed is live again");
        return Vec::new();
    }
    if matches!(verb, Verb::Note | Verb::Assign) && text.trim().is_empty() {
        state.say("nothing sent: the text was empty");
        return Vec::new();
    }
    ids.iter()
        .filter_map(|id| state.faults.get(id))
        .map(|fault| Command::Act {
            verb,
            fault_id: fault.id,
            version: fault.version,
            text: text.clone(),
        })
        .collect()
}

fn run_command(state: &mut State, line: &str) -> Vec<Command> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Vec::new();
    };
    let rest: Vec<&str> = words.collect();
    let argument = rest.join(" ");
    match name {
        "q" | "quit" => state.quit = true,
        "help" => state.mode = Mode::Help,
        "login" => ask_password(state),
        "lamp" | "zone" => return find_lamp(state, argument),
        "ack" => return act(state, Action::Acknowledge),
        "resolve" => return act(state, Action::Resolve),
        "tz" => match argument.parse::<chrono_tz::Tz>() {
            Ok(tz) => {
                state.tz = tz;
                state.say(format!("times are now in {tz}"));
            }
            Err(_) => state.say(format!(
                "{argument:?} is not a time zone (e.g. Europe/London)"
            )),
        },
        "bill" => {
            state.tab = Tab::Billing;
            let date = |text: &str| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok();
            if let Some(lamp) = argument.strip_prefix("lamp") {
                match lamp.trim().parse::<i64>() {
                    Ok(lamp_id) if lamp_id > 0 => {
                        return vec![Command::LampEnergy {
                            lamp_id,
                            date: today(state),
                        }];
                    }
                    _ => state.say("give a lamp id: :bill lamp 12"),
                }
            } else if let Some((from, to)) = argument.split_once("..") {
                match (date(from), date(to)) {
                    (Some(from), Some(to)) if from <= to => {
                        state.billing_period = BillingPeriod::Range(from, to);
                        return billing_query(state);
                    }
                    _ => state.say("give days like :bill 2026-10-01..2026-10-15"),
                }
            } else {
                match NaiveDate::parse_from_str(&format!("{argument}-01"), "%Y-%m-%d") {
                    Ok(first) => {
                        state.billing_period = BillingPeriod::Month(first);
                        return billing_query(state);
                    }
                    Err(_) => state.say(format!(
                        "{argument:?}: give a month (2026-10), days (2026-10-01..2026-10-15) or lamp 12"
                    )),
                }
            }
        }
        other => state.say(format!(
            "unknown command {other:?}; try {}",
            COMMANDS.join(", ")
        )),
    }
    Vec::new()
}

fn today(state: &State) -> NaiveDate {
    state.now.with_timezone(&state.tz).date_naive()
}

fn billing_query(state: &mut State) -> Vec<Command> {
    let today = today(state);
    let first_of = |d: NaiveDate| d.with_day(1).unwrap_or(d);
    let (from, to) = match state.billing_period {
        BillingPeriod::MonthToDate | BillingPeriod::Today => return Vec::new(),
        BillingPeriod::LastMonth => {
            let last = first_of(today).pred_opt().unwrap_or(today);
            (first_of(last), last)
        }
        BillingPeriod::Month(first) => {
            let next = first_of(first + Duration::days(32));
            (first, next.pred_opt().unwrap_or(first).min(today))
        }
        BillingPeriod::Range(from, to) => (from, to.min(today)),
    };
    state.billing_totals = None;
    vec![Command::Totals { from, to }]
}

fn move_to(state: &mut State, index: usize) {
    if state.view.is_empty() {
        return;
    }
    let index = index.min(state.view.len() - 1);
    state.selected_index = index;
    state.selected = Some(state.view[index]);
}

fn act(state: &mut State, action: Action) -> Vec<Command> {
    state.refresh_view();
    let current = state.selected_row().unwrap_or(state.selected_index);
    let page = state.page_rows.max(1);
    match action {
        Action::Quit => state.quit = true,
        Action::Help => state.mode = Mode::Help,
        Action::Command => {
            state.mode = Mode::Command {
                text: String::new(),
                history_at: None,
            }
        }
        Action::NextTab | Action::PreviousTab => {
            let at = TABS.iter().position(|t| *t == state.tab).unwrap_or(0);
            let step = if action == Action::NextTab {
                1
            } else {
                TABS.len() - 1
            };
            state.tab = TABS[(at + step) % TABS.len()];
        }
        Action::FaultsTab => state.tab = Tab::Faults,
        Action::LampsTab => state.tab = Tab::Lamps,
        Action::BillingTab => state.tab = Tab::Billing,
        Action::Down if state.selected.is_none() => move_to(state, 0),
        Action::Down => move_to(state, current + 1),
        Action::Up => move_to(state, current.saturating_sub(1)),
        Action::Top => move_to(state, 0),
        Action::Bottom => move_to(state, usize::MAX),
        Action::PageDown => move_to(state, current + page),
        Action::PageUp => move_to(state, current.saturating_sub(page)),
        Action::HalfPageDown => move_to(state, current + page / 2),
        Action::HalfPageUp => move_to(state, current.saturating_sub(page / 2)),
        Action::Open => {
            if let Some(id) = state.selected.filter(|id| state.faults.contains_key(id)) {
                state.detail = Some(Detail {
                    fault_id: id,
                    history: Vec::new(),
                });
                let mut commands = vec![Command::LoadDetail(id)];
                if let Some(lamp) = state.faults.get(&id).map(|f| f.lamp_id).filter(|l| *l > 0) {
                    commands.push(Command::FindLamp(lamp.to_string()));
                }
                return commands;
            }
        }
        Action::Back => {
            if state.detail.take().is_none() {
                state.marks.clear();
            }
        }
        Action::Filter => {
            state.mode = Mode::Filter {
                text: state.filter_text.clone(),
                error: None,
            }
        }
        Action::Freeze => match state.frozen.take() {
            Some(frozen) => {
                let released = frozen.held.len();
                for event in frozen.held {
                    apply(state, event);
                }
                state.say(format!("feed live again: {released} held changes applied"));
            }
            None => state.frozen = Some(Frozen::default()),
        },
        Action::SortNext => {
            let at = SORT_KEYS.iter().position(|k| *k == state.sort).unwrap_or(0);
            state.sort = SORT_KEYS[(at + 1) % SORT_KEYS.len()];
            state.view_dirty = true;
        }
        Action::SortReverse => {
            state.descending = !state.descending;
            state.view_dirty = true;
        }
        Action::Mark => {
            if let Some(id) = state.selected {
                if !state.marks.remove(&id) {
                    state.marks.insert(id);
                }
                move_to(state, current + 1);
            }
        }
        Action::ClearMarks => state.marks.clear(),
        Action::Acknowledge => {
            let ids = state.targets();
            return triage(state, Verb::Acknowledge, &ids, String::new());
        }
        Action::Resolve => {
            let ids = state.targets();
            return triage(state, Verb::Resolve, &ids, String::new());
        }
        Action::Note | Action::Assign => {
            let ids = state.targets();
            if ids.is_empty() {
                state.say("select or mark a fault first");
            } else if !state.may_triage() {
                say_read_only(state);
            } else if !state.connected() {
                state.say("disconnected: actions wait until the feed is live again");
            } else {
                let for_ = if action == Action::Note {
                    PromptFor::Note(ids)
                } else {
                    PromptFor::Assign(ids)
                };
                state.mode = Mode::Prompt {
                    for_,
                    text: String::new(),
                };
            }
        }
        Action::PreviousDay | Action::NextDay => {
            let day = state.daily_date.unwrap_or_else(|| today(state));
            let day = if action == Action::PreviousDay {
                day.pred_opt().unwrap_or(day)
            } else {
                day.succ_opt().unwrap_or(day).min(today(state))
            };
            state.daily_date = Some(day);
            return vec![Command::Daily(day)];
        }
        Action::FindLamp => {
            state.mode = Mode::Prompt {
                for_: PromptFor::FindLamp,
                text: String::new(),
            }
        }
        Action::BillingPeriod => {
            state.billing_period = match state.billing_period {
                BillingPeriod::MonthToDate => BillingPeriod::Today,
                BillingPeriod::Today => BillingPeriod::LastMonth,
                _ => BillingPeriod::MonthToDate,
            };
            return billing_query(state);
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::console::keymap::Keymap;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 21, 0, 0).unwrap()
    }

    fn fault(id: i64, severity: proto::Severity, version: i64) -> proto::Fault {
        proto::Fault {
            id,
            r#type: proto::FaultType::LampFailure as i32,
            severity: severity as i32,
            state: proto::FaultState::Open as i32,
            lamp_id: 100 + id,
            zone_id: 1,
            count: 1,
            version,
            first_seen: Some(prost_types::Timestamp {
                seconds: now().timestamp() - id * 60,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    fn event(seq: u64, fault: proto::Fault) -> Event {
        Event::Net(NetEvent::Fault(proto::FaultEvent {
            seq,
            kind: "RAISED".into(),
            fault: Some(fault),
            ..Default::default()
        }))
    }

    fn key(text: &str) -> Event {
        Event::Key(Key::parse(text).unwrap())
    }

    fn live_state() -> (State, Keymap) {
        let mut state = State::new(
            "http://test".into(),
            "ana".into(),
            chrono_tz::Europe::London,
            now(),
        );
        let keymap = Keymap::load(None).unwrap();
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Link(StreamName::Faults, Link::Live)),
        );
        (state, keymap)
    }

    #[test]
    fn the_selection_stays_on_its_fault_when_rows_arrive_above_it() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Minor, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Minor, 1)),
        );
        update(&mut state, &keymap, key("j"));
        let picked = state.selected.unwrap();
        // A critical fault sorts above everything.
        update(
            &mut state,
            &keymap,
            event(3, fault(3, proto::Severity::Critical, 1)),
        );
        state.refresh_view();
        assert_eq!(state.selected, Some(picked));
        assert_eq!(state.view[0], 3);
        assert_eq!(state.view[state.selected_row().unwrap()], picked);
        let commands = update(&mut state, &keymap, key("a"));
        assert_eq!(
            commands,
            vec![Command::Act {
                verb: Verb::Acknowledge,
                fault_id: picked,
                version: 1,
                text: String::new()
            }]
        );
    }

    #[test]
    fn a_frozen_feed_holds_changes_and_counts_them() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        update(&mut state, &keymap, key("f"));
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Major, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(3, fault(1, proto::Severity::Critical, 2)),
        );
        let frozen = state.frozen.as_ref().unwrap();
        assert_eq!((frozen.new.len(), frozen.changed.len()), (1, 1));
        assert_eq!(state.faults.len(), 1);
        assert_eq!(
            state.faults[&1].version, 1,
            "the board does not move while frozen"
        );
        update(&mut state, &keymap, key("f"));
        assert_eq!(state.faults.len(), 2);
        assert_eq!(state.faults[&1].version, 2);
        // Events already seen are not applied twice.
        update(
            &mut state,
            &keymap,
            event(3, fault(1, proto::Severity::Minor, 9)),
        );
        assert_eq!(state.faults[&1].version, 2);
    }

    #[test]
    fn marked_faults_are_acted_on_together_with_their_own_versions() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 4)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Major, 7)),
        );
        update(&mut state, &keymap, key("j"));
        update(&mut state, &keymap, key("space"));
        update(&mut state, &keymap, key("space"));
        assert_eq!(state.marks.len(), 2);
        update(&mut state, &keymap, key("A"));
        for c in "crew-7".chars() {
            update(
                &mut state,
                &keymap,
                Event::Key(Key::parse(&c.to_string()).unwrap()),
            );
        }
        let mut commands = update(&mut state, &keymap, key("enter"));
        commands.sort_by_key(|c| match c {
            Command::Act { fault_id, .. } => *fault_id,
            _ => 0,
        });
        assert_eq!(commands.len(), 2);
        assert!(
            matches!(&commands[0], Command::Act { verb: Verb::Assign, fault_id: 1, version: 4, text } if text == "crew-7")
        );
        assert!(matches!(
            &commands[1],
            Command::Act {
                fault_id: 2,
                version: 7,
                ..
            }
        ));
    }

    #[test]
    fn a_session_that_ends_asks_for_the_password_once_and_sends_it_on_enter() {
        let (mut state, keymap) = live_state();
        let signed_out = || {
            Event::Net(NetEvent::Link(
                StreamName::Faults,
                Link::SignedOut {
                    since: now(),
                    reason: "expired".into(),
                },
            ))
        };
        update(&mut state, &keymap, signed_out());
        assert!(matches!(
            state.mode,
            Mode::Prompt {
                for_: PromptFor::Password,
                ..
            }
        ));
        // Enter on nothing sends nothing; esc leaves, and the next notice does not ask again.
        assert!(update(&mut state, &keymap, key("enter")).is_empty());
        update(&mut state, &keymap, key(":"));
        for k in ["l", "o", "g", "i", "n"] {
            update(&mut state, &keymap, key(k));
        }
        update(&mut state, &keymap, key("enter"));
        for k in ["p", "w"] {
            update(&mut state, &keymap, key(k));
        }
        let sent = update(&mut state, &keymap, key("enter"));
        assert!(matches!(&sent[..], [Command::SignIn { password }] if password == "pw"));
        update(&mut state, &keymap, signed_out());
        assert!(
            matches!(state.mode, Mode::Normal),
            "asked once per sign-out"
        );
    }

    #[test]
    fn a_read_only_role_sends_no_triage_and_is_told_why() {
        let (mut state, keymap) = live_state();
        state.role = Some(crate::domain::inventory::Role::Dev);
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        update(&mut state, &keymap, key("j"));
        for k in ["a", "r", "n", "A"] {
            assert!(update(&mut state, &keymap, key(k)).is_empty(), "{k}");
        }
        assert!(matches!(state.mode, Mode::Normal), "no prompt opened");
        assert!(state.message.as_ref().unwrap().1.contains("read-only"));
        state.role = Some(crate::domain::inventory::Role::User);
        let sent = update(&mut state, &keymap, key("a"));
        assert!(matches!(
            &sent[..],
            [Command::Act {
                verb: Verb::Acknowledge,
                ..
            }]
        ));
    }

    #[test]
    fn nothing_is_sent_while_disconnected_and_a_stale_refusal_says_what_changed() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        update(&mut state, &keymap, key("j"));
        let down = Link::Down {
            since: now(),
            retry_at: now() + Duration::seconds(4),
            error: "gone".into(),
        };
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Link(StreamName::Faults, down)),
        );
        assert!(update(&mut state, &keymap, key("a")).is_empty());
        assert!(state.message.as_ref().unwrap().1.contains("disconnected"));
        let mut current = fault(1, proto::Severity::Major, 2);
        current.state = proto::FaultState::Assigned as i32;
        current.assignee = "crew-2".into();
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Refused {
                verb: "acknowledged",
                fault_id: 1,
                message: "changed since you read it".into(),
                current: Some(current),
            }),
        );
        let message = &state.message.as_ref().unwrap().1;
        assert!(
            message.contains("ASSIGNED v2") && message.contains("crew-2"),
            "{message}"
        );
        assert_eq!(state.faults[&1].version, 2);
    }

    #[test]
    fn the_filter_applies_as_typed_only_while_valid() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Minor, 1)),
        );
        update(&mut state, &keymap, key("/"));
        for c in "sev>=major".chars() {
            update(
                &mut state,
                &keymap,
                Event::Key(Key::parse(&c.to_string()).unwrap()),
            );
        }
        state.refresh_view();
        assert_eq!(state.view, vec![1]);
        update(&mut state, &keymap, Event::Key(Key::parse("x").unwrap()));
        assert!(matches!(&state.mode, Mode::Filter { error: Some(_), .. }));
        state.refresh_view();
        assert_eq!(
            state.view,
            vec![1],
            "an invalid filter keeps the last valid one"
        );
        update(&mut state, &keymap, key("esc"));
        assert_eq!(state.mode, Mode::Normal);
    }

    #[test]
    fn commands_complete_remember_and_act() {
        let (mut state, keymap) = live_state();
        update(&mut state, &keymap, key(":"));
        update(&mut state, &keymap, Event::Key(Key::parse("b").unwrap()));
        update(&mut state, &keymap, key("tab"));
        assert_eq!(
            state.mode,
            Mode::Command {
                text: "bill ".into(),
                history_at: None
            }
        );
        for c in "2026-10".chars() {
            update(
                &mut state,
                &keymap,
                Event::Key(Key::parse(&c.to_string()).unwrap()),
            );
        }
        let commands = update(&mut state, &keymap, key("enter"));
        assert_eq!(state.tab, Tab::Billing);
        assert_eq!(
            commands,
            vec![Command::Totals {
                from: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap()
            }]
        );
        update(&mut state, &keymap, key(":"));
        update(&mut state, &keymap, key("up"));
        assert_eq!(
            state.mode,
            Mode::Command {
                text: "bill 2026-10".into(),
                history_at: Some(0)
            }
        );
        update(&mut state, &keymap, key("esc"));
        update(&mut state, &keymap, key(":"));
        for c in "tz Australia/Melbourne".chars() {
            let name = if c == ' ' {
                "space".to_owned()
            } else {
                c.to_string()
            };
            update(&mut state, &keymap, Event::Key(Key::parse(&name).unwrap()));
        }
        update(&mut state, &keymap, key("enter"));
        assert_eq!(state.tz, chrono_tz::Australia::Melbourne);
        update(&mut state, &keymap, key(":"));
        update(&mut state, &keymap, Event::Key(Key::parse("q").unwrap()));
        update(&mut state, &keymap, key("enter"));
        assert!(state.quit);
    }

    fn command(state: &mut State, keymap: &Keymap, line: &str) -> Vec<Command> {
        update(state, keymap, key(":"));
        for c in line.chars() {
            let name = if c == ' ' {
                "space".to_owned()
            } else {
                c.to_string()
            };
            update(state, keymap, Event::Key(Key::parse(&name).unwrap()));
        }
        update(state, keymap, key("enter"))
    }

    #[test]
    fn billing_commands_take_days_and_a_lamp() {
        let (mut state, keymap) = live_state();
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert_eq!(
            command(&mut state, &keymap, "bill 2026-10-01..2026-10-15"),
            vec![Command::Totals {
                from: day("2026-10-01"),
                to: day("2026-10-15")
            }]
        );
        assert_eq!(
            command(&mut state, &keymap, "bill lamp 12"),
            vec![Command::LampEnergy {
                lamp_id: 12,
                date: day("2026-11-28")
            }]
        );
        assert!(command(&mut state, &keymap, "bill 2026-10-15..2026-10-01").is_empty());
        assert!(
            state
                .message
                .as_ref()
                .unwrap()
                .1
                .contains("2026-10-01..2026-10-15")
        );
        assert!(command(&mut state, &keymap, "bill lamp x").is_empty());
    }

    #[test]
    fn a_resolved_fault_leaves_and_the_cursor_does_not_jump_to_another() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Major, 1)),
        );
        update(&mut state, &keymap, key("j"));
        let picked = state.selected.unwrap();
        let mut resolved = fault(picked, proto::Severity::Major, 2);
        resolved.state = proto::FaultState::Resolved as i32;
        update(&mut state, &keymap, event(3, resolved));
        state.refresh_view();
        assert_eq!(state.selected, Some(picked));
        assert_eq!(state.selected_row(), None);
        assert!(
            update(&mut state, &keymap, key("a")).is_empty(),
            "no action on a fault that left"
        );
    }
}
