//! `update(state, event) -> commands`: the one place the console's state changes. Keys become
//! actions through the keymap; network events fold into the board and panes; what needs the
//! network comes back as commands for the loop to hand to its tasks.
//!
//! Triage is held to what the operator can see: keys act on the selected row only when it is
//! on screen, marks hidden by the filter are left out (and the confirmation says so), bulk
//! actions and resolving ask first, and every outcome is reported.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::filter::{Filter, fault_type_name, severity_rank};
use super::keymap::{Action, Key, KeyName, Keymap};

use super::state::{
    BillingPeriod, Confirm, Detail, Effect, Frozen, LeftView, Link, Mode, PromptFor, SORT_KEYS,
    SortKey, State, StreamName, TABS, Tab, Targets, Verb, on_board,
};
use super::views::{SavedView, check_name};
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
    /// A triage action on one or more faults ended: what was applied and what was refused.
    Acted {
        verb: Verb,
        done: Vec<proto::Fault>,
        refused: Vec<Refusal>,
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
    /// A lamp or zone asked for was not found, or could not be looked up: the lamp pane says
    /// so instead of "looking for".
    LookupFailed(String),
    /// Who has which fault open or claimed (empty while presence is unreachable).
    Presence(proto::PresenceBoard),
    /// A saved view, read back by name.
    View(String, SavedView),
    Handover(proto::HandoverResponse),
    /// Something that needs saying and is not a failure ("view saved").
    Said(String),
    /// Signed in again: the streams resume by themselves.
    SignedIn,
    SignInRefused(String),
}

/// Why one fault of a triage action was not changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub fault_id: i64,
    /// The server's reason, for refusals other than a stale version.
    pub reason: String,
    /// For a stale version: the change that made it stale, from the fault's history.
    pub changed_by: Option<proto::HistoryEntry>,
    /// The fault as it now is, when it could be read.
    pub current: Option<proto::Fault>,
}

/// Work for the network tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One triage action on faults, each with the version the operator saw.
    Act {
        verb: Verb,
        targets: Vec<(i64, i64)>,
        text: String,
    },
    LoadDetail(i64),
    /// Daily Faults of a local day, in the time zone the console shows now.
    Daily {
        date: NaiveDate,
        tz: String,
    },
    /// A lamp id, a telecell uuid or a zone name.
    FindLamp(String),
    WatchLamp(i64),
    WatchZone(i64),
    /// Nothing shows a lamp any more: its stream closes.
    StopLamp,
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
    /// Streams waiting out their backoff try again now.
    Reconnect,
    /// What this console has open, and a claim to make or give up.
    Presence(proto::PresenceUpdate),
    /// Keeps the board's filter, sort and grouping under a name.
    SaveView {
        name: String,
        view: SavedView,
    },
    /// Reads a saved view back (answered with `NetEvent::View`).
    LoadView(String),
    /// The handover of the shift that began at `since`, in the console's zone.
    Handover {
        since: DateTime<Utc>,
        tz: String,
    },
    /// Writes text to a file the operator named (`:handover save FILE`).
    WriteText {
        path: std::path::PathBuf,
        text: String,
    },
}

/// Commands the console understands after `:`, for completion.
pub const COMMANDS: &[&str] = &[
    "ack", "assign", "bill", "fault", "handover", "help", "lamp", "login", "note", "q", "quit",
    "resolve", "set", "tz", "view", "zone",
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
        Event::Key(key) => {
            let mut commands = on_key(state, keymap, key);
            // Others see which fault this console is on: its detail, or an action being
            // typed or confirmed for one fault.
            let engaged = engaged(state);
            if engaged != state.viewing_sent {
                state.viewing_sent = engaged;
                commands.push(viewing(engaged));
            }
            // A key pressed with the board in view: the operator has looked.
            if state.on_the_board() && state.unseen_critical > 0 {
                state.unseen_critical = 0;
                state.effects.push(Effect::Title(state.title()));
            }
            // A key may change what is shown (filter, sort): the cursor follows at once. Feed
            // events wait for the next frame, which orders the board once for all of them.
            state.refresh_view();
            commands
        }
    }
}

fn on_net(state: &mut State, event: NetEvent) -> Vec<Command> {
    match event {
        NetEvent::Link(StreamName::Lamp, _)
            if state.lamps.lamp.is_none() && state.lamps.zone_id == 0 =>
        {
            // A closed lamp stream's last word: nothing shows a lamp now.
        }
        NetEvent::Link(stream, link) => {
            let signed_out = matches!(link, Link::SignedOut { .. });
            let newly =
                signed_out && !matches!(state.streams.get(&stream), Some(Link::SignedOut { .. }));
            if stream == StreamName::Faults {
                match link {
                    Link::Live if state.live_since.is_none() => state.live_since = Some(state.now),
                    Link::Live => {}
                    _ => state.live_since = None,
                }
            }
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
            state.feed_at = Some(state.now);
            state.frozen = state.frozen.take().map(|_| Frozen::default());
            state.view_dirty = true;
        }
        NetEvent::Fault(event) => {
            if event.seq <= state.last_seq {
                return Vec::new();
            }
            state.last_seq = event.seq;
            state.feed_at = Some(state.now);
            state.arrivals.push_back(state.now);
            notice_critical(state, &event);
            follow_in_detail(state, &event);
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
            if let (Some(open), Some(fault)) = (&mut state.detail, detail.fault)
                && open.fault_id == fault.id
            {
                // Entries that arrived live while it loaded stay, unless the read has them.
                let live = std::mem::replace(&mut open.history, detail.history);
                for entry in live {
                    let known = open.history.iter().any(|h| {
                        h.at == entry.at && h.action == entry.action && h.actor == entry.actor
                    });
                    if !known {
                        open.history.push(entry);
                    }
                }
                if open
                    .fault
                    .as_ref()
                    .is_none_or(|f| f.version <= fault.version)
                {
                    open.fault = Some(fault);
                }
                open.loaded = true;
                open.omitted = detail.history_omitted;
            }
        }
        NetEvent::Acted {
            verb,
            done,
            refused,
        } => {
            let message = outcome(state, verb, &done, &refused);
            state.say(message);
            for fault in done {
                state.marks.remove(&fault.id);
                upsert(state, fault);
            }
            for refusal in refused {
                if let Some(fault) = refusal.current {
                    upsert(state, fault);
                }
            }
        }
        NetEvent::Daily(daily) => state.daily = Some(daily),
        NetEvent::ZoneFound(zone_id) => {
            state.message = None;
            state.lamps.failed = None;
            state.lamps.lamp = None;
            state.lamps.status = None;
            state.lamps.zone_lamps.clear();
            state.lamps.zone_points.clear();
            state.lamps.zone_id = zone_id;
            state.lamps.for_detail = false;
            return vec![Command::WatchZone(zone_id)];
        }
        NetEvent::Lamp(lamp) => {
            // Only the lamp asked for last (the detail's lamp, or one found) is followed.
            if state.lamps.wanted.is_some_and(|wanted| wanted != lamp.id) {
                return Vec::new();
            }
            if !state.lamps.for_detail {
                state.message = None;
            }
            let commands = vec![Command::WatchLamp(lamp.id)];
            state.lamps.failed = None;
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
            state.lamp_at = Some(state.now);
            state.lamps.zone_lamps.insert(status.lamp_id, status);
        }
        NetEvent::ZoneLamps { zone_id, points } => {
            state.lamps.zone_id = zone_id;
            state.lamps.zone_points = points
                .into_iter()
                .map(|(id, lat, lon)| (id, (lat, lon)))
                .collect();
        }
        NetEvent::LiveTotals(live) => {
            state.billing_at = Some(state.now);
            state.billing_live = Some(live);
        }
        NetEvent::LampEnergy(energy) => {
            state.message = None;
            state.billing_lamp = Some(energy);
        }
        NetEvent::Totals(totals) => {
            state.message = None;
            state.billing_at = Some(state.now);
            state.billing_totals = Some(totals);
        }
        NetEvent::Failed(message) => state.say(message),
        NetEvent::LookupFailed(message) => {
            state.lamps.failed = Some(message.clone());
            state.say(message);
        }
        NetEvent::View(name, view) => match view.apply_to(state) {
            Ok(()) => state.say(format!("view {name}: {}", view_words(&view))),
            Err(e) => state.say(format!("view {name} not applied: {e}")),
        },
        NetEvent::Said(message) => state.say(message),
        NetEvent::Handover(handover) => {
            state.handover = Some(handover);
            state.mode = Mode::Handover { scroll: 0 };
        }
        NetEvent::Presence(board) => {
            if !board.refused.is_empty() && board.refused != state.claim_refused {
                state.say(format!("not claimed: {}", board.refused));
            }
            state.claim_refused = board.refused;
            state.presence = board.faults.into_iter().map(|p| (p.fault_id, p)).collect();
        }
    }
    Vec::new()
}

/// Shifts without a start named cover this long.
const DEFAULT_SHIFT_HOURS: i64 = 12;

/// `:handover [HH:MM]` asks for the shift's handover; `:handover save FILE` writes the last one
/// as Markdown.
fn handover_command(state: &mut State, words: &[&str]) -> Vec<Command> {
    match words {
        ["save", path] => match &state.handover {
            Some(handover) => vec![Command::WriteText {
                path: std::path::PathBuf::from(path),
                text: crate::handover::markdown(handover, state.tz),
            }],
            None => {
                state.say("no handover yet: :handover 19:00 first, then :handover save FILE");
                Vec::new()
            }
        },
        [] => {
            state.say(format!(
                "the last {DEFAULT_SHIFT_HOURS} hours (:handover 19:00 for a shift from 19:00)"
            ));
            vec![Command::Handover {
                since: state.now - Duration::hours(DEFAULT_SHIFT_HOURS),
                tz: state.tz.name().to_owned(),
            }]
        }
        [time] => match crate::domain::local_time::wall_time("handover", time) {
            Ok(time) => vec![Command::Handover {
                since: crate::domain::local_time::last_wall_time(time, state.tz, state.now),
                tz: state.tz.name().to_owned(),
            }],
            Err(e) => {
                state.say(e.to_string());
                Vec::new()
            }
        },
        _ => {
            state.say(":handover [HH:MM] shows the shift's handover; :handover save FILE keeps it");
            Vec::new()
        }
    }
}

/// "filter sev>=major, sorted by age, grouped by zone".
fn view_words(view: &SavedView) -> String {
    let filter = if view.filter.is_empty() {
        "no filter".to_owned()
    } else {
        format!("filter {}", view.filter)
    };
    let order = if view.descending { " desc" } else { "" };
    format!(
        "{filter}, sorted by {}{order}, grouped by {}",
        view.sort, view.grouping
    )
}

/// A CRITICAL fault raised, re-opened or escalated: counted until the operator looks at the
/// board, announced in the window title, and rung when the bell is on (once per burst).
fn notice_critical(state: &mut State, event: &proto::FaultEvent) {
    let Some(fault) = &event.fault else { return };
    let critical = fault.severity == proto::Severity::Critical as i32;
    if !critical || !matches!(event.kind.as_str(), "RAISED" | "REOPENED" | "ESCALATED") {
        return;
    }
    state.unseen_critical += 1;
    if state.bell {
        if !state.effects.contains(&Effect::Bell) {
            state.effects.push(Effect::Bell);
        }
        state.effects.retain(|e| !matches!(e, Effect::Title(_)));
        state.effects.push(Effect::Title(state.title()));
    }
}

/// The open detail follows its fault live, frozen board or not: the header and the history
/// come from the same events, so they never disagree.
fn follow_in_detail(state: &mut State, event: &proto::FaultEvent) {
    let Some(detail) = &mut state.detail else {
        return;
    };
    let Some(fault) = event.fault.as_ref().filter(|f| f.id == detail.fault_id) else {
        return;
    };
    let before = detail.fault.as_ref().map_or(0, |f| f.state);
    detail.history.push(proto::HistoryEntry {
        at: event.at,
        actor: event.actor.clone(),
        action: event.kind.clone(),
        from_state: before,
        to_state: fault.state,
        note: event.note.clone(),
        change: change_words(&event.kind, fault),
    });
    detail.fault = Some(fault.clone());
}

/// What an event changed besides the state, as the server words it in the history.
pub fn change_words(kind: &str, fault: &proto::Fault) -> String {
    match kind {
        "ASSIGNED" => format!("to {}", fault.assignee),
        "ESCALATED" => format!("to {}", severity_name(fault.severity)),
        "GROUPED" if fault.parent_id > 0 => format!("under fault {}", fault.parent_id),
        "REOPENED" if fault.flapping => "flapping".to_owned(),
        _ => String::new(),
    }
}

pub fn severity_name(severity: i32) -> &'static str {
    match proto::Severity::try_from(severity) {
        Ok(proto::Severity::Critical) => "CRITICAL",
        Ok(proto::Severity::Major) => "MAJOR",
        Ok(proto::Severity::Minor) => "MINOR",
        Ok(proto::Severity::Warning) => "WARNING",
        _ => "-",
    }
}

/// "3 acknowledged, 1 refused: fault 9 changed (acked by ana 04:24)"; for one fault,
/// "fault 9 acknowledged" or "not acknowledged: fault 9 changed (...)".
fn outcome(state: &State, verb: Verb, done: &[proto::Fault], refused: &[Refusal]) -> String {
    let why: Vec<String> = refused.iter().map(|r| refusal_words(state, r)).collect();
    match (done, refused) {
        ([one], []) => format!("fault {} {}", one.id, verb.past()),
        ([], [_]) => format!("not {}: {}", verb.past(), why.join("")),
        (_, []) => format!("{} {}", done.len(), verb.past()),
        _ => format!(
            "{} {}, {} refused: {}",
            done.len(),
            verb.past(),
            refused.len(),
            why.join("; ")
        ),
    }
}

/// "fault 9 changed (acked by ana 04:24)", or the server's reason.
fn refusal_words(state: &State, refusal: &Refusal) -> String {
    let Some(entry) = &refusal.changed_by else {
        return format!("fault {} {}", refusal.fault_id, refusal.reason);
    };
    let what = match entry.action.as_str() {
        "ACKNOWLEDGED" => "acked".to_owned(),
        "ASSIGNED" => format!("assigned {}", entry.change),
        "ESCALATED" => format!("escalated {}", entry.change),
        other => other.to_lowercase(),
    };
    let at = entry
        .at
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&state.tz).format(" %H:%M").to_string())
        .unwrap_or_default();
    format!(
        "fault {} changed ({what} by {}{at})",
        refusal.fault_id, entry.actor
    )
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
        Mode::Handover { scroll } => {
            state.mode = match keymap.action(key) {
                Some(Action::Down) => Mode::Handover { scroll: scroll + 1 },
                Some(Action::Up) => Mode::Handover {
                    scroll: scroll.saturating_sub(1),
                },
                Some(Action::PageDown | Action::HalfPageDown) => Mode::Handover {
                    scroll: scroll + state.page_rows / 2,
                },
                Some(Action::PageUp | Action::HalfPageUp) => Mode::Handover {
                    scroll: scroll.saturating_sub(state.page_rows / 2),
                },
                Some(Action::Command) => Mode::Command {
                    text: String::new(),
                    history_at: None,
                },
                _ => Mode::Normal,
            };
            Vec::new()
        }
        Mode::Help { scroll } => {
            match keymap.action(key) {
                Some(Action::Down) => state.mode = Mode::Help { scroll: scroll + 1 },
                Some(Action::Up) => {
                    state.mode = Mode::Help {
                        scroll: scroll.saturating_sub(1),
                    }
                }
                Some(Action::PageDown | Action::HalfPageDown) => {
                    state.mode = Mode::Help {
                        scroll: scroll + state.page_rows / 2,
                    }
                }
                Some(Action::PageUp | Action::HalfPageUp) => {
                    state.mode = Mode::Help {
                        scroll: scroll.saturating_sub(state.page_rows / 2),
                    }
                }
                Some(Action::Quit) => state.quit = true,
                _ => state.mode = Mode::Normal,
            }
            Vec::new()
        }
        Mode::Filter { text, before, .. } => edit_filter(state, key, text, before),
        Mode::Command { text, history_at } => edit_command(state, key, text, history_at),
        Mode::Prompt { for_, text } => edit_prompt(state, key, for_, text),
        Mode::Confirm(confirm) => answer(state, key, confirm),
        Mode::TakeOver { fault_id, holder } => answer_take_over(state, key, fault_id, &holder),
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

/// The filter previews on the board while what is typed is valid; while it is not, the
/// board shows the filter from before the edit (never a valid prefix of the new text).
/// `enter` keeps a valid filter and refuses an invalid one; `esc` restores the one before.
fn edit_filter(state: &mut State, key: Key, text: String, before: String) -> Vec<Command> {
    match key.code {
        KeyName::Esc => {
            set_filter(state, &before);
            state.mode = Mode::Normal;
        }
        KeyName::Enter => match Filter::parse(&text) {
            Ok(_) => {
                set_filter(state, &text);
                remember_filter(state, &text);
                state.mode = Mode::Normal;
            }
            Err(e) => {
                state.mode = Mode::Filter {
                    text,
                    error: Some(format!("{e} (not applied)")),
                    before,
                }
            }
        },
        _ => {
            let next = match key.code {
                KeyName::Up => older_filter(state, &text),
                KeyName::Down => newer_filter(state, &text, &before),
                _ => edit(&text, key),
            };
            if let Some(text) = next {
                let error = match Filter::parse(&text) {
                    Ok(_) => {
                        set_filter(state, &text);
                        None
                    }
                    Err(e) => {
                        set_filter(state, &before);
                        Some(e)
                    }
                };
                state.mode = Mode::Filter {
                    text,
                    error,
                    before,
                };
            }
        }
    }
    Vec::new()
}

/// Filters remembered for `/` then up; the oldest go first.
const FILTER_HISTORY: usize = 50;

fn remember_filter(state: &mut State, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    state.filter_history.retain(|f| f != text);
    state.filter_history.push(text.to_owned());
    if state.filter_history.len() > FILTER_HISTORY {
        state.filter_history.remove(0);
    }
}

/// The filter typed before the one on the line (the newest when the line is not one of them).
fn older_filter(state: &State, text: &str) -> Option<String> {
    let history = &state.filter_history;
    match history.iter().rposition(|f| f == text.trim()) {
        Some(0) => None,
        Some(at) => Some(history[at - 1].clone()),
        None => history.last().cloned(),
    }
}

/// The filter typed after the one on the line; past the newest, the filter from before the
/// edit.
fn newer_filter(state: &State, text: &str, before: &str) -> Option<String> {
    let history = &state.filter_history;
    let at = history.iter().rposition(|f| f == text.trim())?;
    Some(
        history
            .get(at + 1)
            .cloned()
            .unwrap_or_else(|| before.to_owned()),
    )
}

/// Puts a filter text in force (an invalid one, which callers never pass, clears it).
fn set_filter(state: &mut State, text: &str) {
    state.filter = Filter::parse(text).unwrap_or_default();
    state.filter_text = text.to_owned();
    state.view_dirty = true;
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
        KeyName::Tab => complete(state, text, history_at),
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

/// Tab: completes a command name, or after `:zone ` a zone's name; several candidates are
/// listed, and their common start is filled in.
fn complete(state: &mut State, text: String, history_at: Option<usize>) {
    let (prefix, word, candidates): (String, String, Vec<String>) = match text.strip_prefix("zone ")
    {
        Some(partial) => {
            let partial = partial.trim_start().to_lowercase();
            let mut names: Vec<String> = state
                .zones
                .values()
                .filter(|name| name.to_lowercase().starts_with(&partial))
                .cloned()
                .collect();
            names.sort();
            ("zone ".to_owned(), partial, names)
        }
        None => (
            String::new(),
            text.trim().to_owned(),
            COMMANDS
                .iter()
                .filter(|c| c.starts_with(text.trim()))
                .map(|c| (*c).to_owned())
                .collect(),
        ),
    };
    match candidates.as_slice() {
        [only] => {
            let space = if prefix.is_empty() { " " } else { "" };
            state.mode = Mode::Command {
                text: format!("{prefix}{only}{space}"),
                history_at,
            }
        }
        [] if prefix.is_empty() => state.say(format!("no command starts with {word:?}")),
        [] => state.say(format!("no zone starts with {word:?}")),
        many => {
            let common = common_start(many);
            if common.chars().count() > word.chars().count() {
                state.mode = Mode::Command {
                    text: format!("{prefix}{common}"),
                    history_at,
                };
            }
            state.say(many.join("  "));
        }
    }
}

/// The longest start every name shares (case as in the first).
fn common_start(names: &[String]) -> String {
    let Some(first) = names.first() else {
        return String::new();
    };
    let mut end = first.len();
    for name in &names[1..] {
        end = first
            .char_indices()
            .zip(name.chars())
            .take_while(|((_, a), b)| a.eq_ignore_ascii_case(b))
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    first[..end].to_owned()
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
                PromptFor::Note(targets) => ask_or_send(state, Verb::Note, targets, text),
                PromptFor::Assign(targets) => ask_or_send(state, Verb::Assign, targets, text),
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

/// `y` sends what was confirmed; anything else leaves it unsent.
fn answer_take_over(state: &mut State, key: Key, fault_id: i64, holder: &str) -> Vec<Command> {
    state.mode = Mode::Normal;
    if !matches!(key.code, KeyName::Char('y' | 'Y')) {
        state.say(format!("fault {fault_id} left with {holder}"));
        return Vec::new();
    }
    state.say(format!("fault {fault_id} taken over from {holder}"));
    vec![Command::Presence(proto::PresenceUpdate {
        viewing_fault_id: state.detail.as_ref().map_or(0, |d| d.fault_id),
        claim_fault_id: fault_id,
        take_over: true,
        release_fault_id: 0,
    })]
}

fn answer(state: &mut State, key: Key, confirm: Confirm) -> Vec<Command> {
    state.mode = Mode::Normal;
    match key.code {
        KeyName::Char('y' | 'Y') => send(state, confirm.verb, confirm.targets.ids, confirm.text),
        _ => {
            state.say(format!("nothing {}", confirm.verb.past()));
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
    state.lamps.failed = None;
    state.lamps.for_detail = false;
    state.lamps.wanted = query.parse().ok();
    vec![Command::FindLamp(query)]
}

fn say_read_only(state: &mut State) {
    let role = state.role.map_or("this", |r| r.as_str());
    state.say(format!("read-only: the {role} role may not triage faults"));
}

/// The faults a key acts on, with the versions on screen: the marked ones the filter shows,
/// else the selected one if it is on screen. Marked faults the filter hides are counted.
fn visible_targets(state: &State) -> Targets {
    let visible = |id: &i64| state.is_shown(*id);
    if state.marks.is_empty() {
        let ids = state
            .selected
            .filter(visible)
            .and_then(|id| state.faults.get(&id))
            .map(|f| vec![(f.id, f.version)])
            .unwrap_or_default();
        let children = ids.iter().map(|(id, _)| state.child_count(*id)).sum();
        return Targets {
            ids,
            hidden: 0,
            bulk: false,
            children,
        };
    }
    let (shown, hidden): (Vec<i64>, Vec<i64>) = state.marks.iter().partition(|id| visible(id));
    let ids: Vec<(i64, i64)> = shown
        .iter()
        .filter_map(|id| state.faults.get(id))
        .map(|f| (f.id, f.version))
        .collect();
    // A marked lamp fault under a marked roll-up is reached once, through the roll-up.
    let children = ids
        .iter()
        .map(|(id, _)| {
            state.children.get(id).map_or(0, |under| {
                under.iter().filter(|c| !state.marks.contains(c)).count()
            })
        })
        .sum();
    Targets {
        ids,
        hidden: hidden.len(),
        bulk: true,
        children,
    }
}

/// Why no action can be sent now, if so.
fn cannot_triage(state: &mut State) -> bool {
    if !state.may_triage() {
        say_read_only(state);
        return true;
    }
    if !state.connected() {
        state.say(
            "not sent: disconnected, so versions may be stale; act again when the feed is live",
        );
        return true;
    }
    false
}

/// A triage key: checks, then asks for text (assign, note), then confirms when it is bulk or
/// a resolve, then sends.
fn triage_key(state: &mut State, verb: Verb) -> Vec<Command> {
    if cannot_triage(state) {
        return Vec::new();
    }
    let targets = visible_targets(state);
    if targets.ids.is_empty() {
        let why = match (targets.bulk, state.selected) {
            (true, _) => "every marked fault is hidden by the filter: nothing to act on",
            (false, Some(_)) => "the selected fault is not on screen: select a row first",
            (false, None) => "select or mark a fault first",
        };
        state.say(why);
        return Vec::new();
    }
    match verb {
        Verb::Note => {
            state.mode = Mode::Prompt {
                for_: PromptFor::Note(targets),
                text: String::new(),
            };
            Vec::new()
        }
        Verb::Assign => {
            state.mode = Mode::Prompt {
                for_: PromptFor::Assign(targets),
                text: String::new(),
            };
            Vec::new()
        }
        _ => ask_or_send(state, verb, targets, String::new()),
    }
}

/// Sends at once, or asks first for a bulk action or a resolve.
fn ask_or_send(state: &mut State, verb: Verb, targets: Targets, text: String) -> Vec<Command> {
    if matches!(verb, Verb::Note | Verb::Assign) && text.trim().is_empty() {
        state.say("nothing sent: the text was empty");
        return Vec::new();
    }
    if targets.bulk || verb == Verb::Resolve || targets.children > 0 {
        state.mode = Mode::Confirm(Confirm {
            verb,
            targets,
            text,
        });
        return Vec::new();
    }
    send(state, verb, targets.ids, text)
}

fn send(state: &mut State, verb: Verb, targets: Vec<(i64, i64)>, text: String) -> Vec<Command> {
    if cannot_triage(state) || targets.is_empty() {
        return Vec::new();
    }
    vec![Command::Act {
        verb,
        targets,
        text,
    }]
}

/// `:ack 17`, `:resolve 17`, `:assign 17 crew-7`, `:note 17 text`: the named fault, with the
/// version on the board (it must be on the board, though a filter may hide it).
fn act_on_id(state: &mut State, verb: Verb, argument: &str) -> Vec<Command> {
    let (id, text) = match argument.split_once(' ') {
        Some((id, text)) => (id, text.trim().to_owned()),
        None => (argument, String::new()),
    };
    let usage = match verb {
        Verb::Assign => ":assign 17 crew-north",
        Verb::Note => ":note 17 what you found",
        Verb::Acknowledge => ":ack 17",
        Verb::Resolve => ":resolve 17",
    };
    let Ok(id) = id.trim().trim_start_matches('#').parse::<i64>() else {
        state.say(format!("give a fault id: {usage}"));
        return Vec::new();
    };
    if cannot_triage(state) {
        return Vec::new();
    }
    let Some(fault) = state.faults.get(&id) else {
        state.say(format!("fault {id} is not on the board"));
        return Vec::new();
    };
    let targets = Targets {
        ids: vec![(fault.id, fault.version)],
        hidden: 0,
        bulk: false,
        children: state.child_count(id),
    };
    if matches!(verb, Verb::Assign | Verb::Note) && text.is_empty() {
        state.say(format!("give the text too: {usage}"));
        return Vec::new();
    }
    ask_or_send(state, verb, targets, text)
}

/// `:fault 17`: selects the fault (clearing a filter that hides it, and saying so), or opens
/// a fault that has left the board from the server.
fn jump_to(state: &mut State, argument: &str) -> Vec<Command> {
    let Ok(id) = argument.trim().trim_start_matches('#').parse::<i64>() else {
        state.say("give a fault id: :fault 17");
        return Vec::new();
    };
    state.tab = Tab::Faults;
    if state.faults.contains_key(&id) {
        if !state.is_shown(id) {
            set_filter(state, "");
            state.say(format!("filter cleared to show fault {id}"));
            state.refresh_view();
        }
        state.selected = Some(id);
        state.left_view = None;
        state.refresh_view();
        return Vec::new();
    }
    open_detail(state, id, None)
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
        "help" => state.mode = Mode::Help { scroll: 0 },
        "handover" => return handover_command(state, &rest),
        "view" => match rest.as_slice() {
            ["save", name] => match check_name(name) {
                Ok(()) => {
                    return vec![Command::SaveView {
                        name: (*name).to_owned(),
                        view: SavedView::of(state),
                    }];
                }
                Err(e) => state.say(e),
            },
            [name] if *name != "save" => match check_name(name) {
                Ok(()) => return vec![Command::LoadView((*name).to_owned())],
                Err(e) => state.say(e),
            },
            _ => state.say("give a name: :view save NAME keeps the board's filter, sort and grouping; :view NAME brings them back"),
        },
        "set" => match argument.as_str() {
            "bell" => {
                state.bell = true;
                state.say("bell on: each new CRITICAL rings and flashes the title");
            }
            "nobell" => {
                state.bell = false;
                state.say("bell off");
            }
            _ => state.say("set what? :set bell or :set nobell"),
        },
        "login" => ask_password(state),
        "lamp" | "zone" if argument.is_empty() => state.say(format!(
            "give a {name}: :{name} {}",
            if name == "lamp" { "12" } else { "West End" }
        )),
        "lamp" | "zone" => return find_lamp(state, argument),
        "fault" => return jump_to(state, &argument),
        "ack" if argument.is_empty() => return triage_key(state, Verb::Acknowledge),
        "resolve" if argument.is_empty() => return triage_key(state, Verb::Resolve),
        "ack" => return act_on_id(state, Verb::Acknowledge, &argument),
        "resolve" => return act_on_id(state, Verb::Resolve, &argument),
        "assign" => return act_on_id(state, Verb::Assign, &argument),
        "note" => return act_on_id(state, Verb::Note, &argument),
        "tz" => match argument.parse::<chrono_tz::Tz>() {
            Ok(tz) => {
                state.tz = tz;
                state.say(format!("times are now in {tz}"));
                // Daily Faults follows the new zone's calendar day.
                state.daily_date = None;
                state.daily = None;
                return vec![Command::Daily {
                    date: today(state),
                    tz: tz.name().to_owned(),
                }];
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
    // A period replaces one lamp's day on screen.
    state.billing_lamp = None;
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
    state.left_view = None;
}

/// Opens a fault's detail, and its lamp's live status when it is on a lamp.
fn open_detail(state: &mut State, id: i64, fault: Option<proto::Fault>) -> Vec<Command> {
    let lamp = fault.as_ref().map(|f| f.lamp_id).filter(|l| *l > 0);
    state.detail = Some(Detail {
        fault_id: id,
        fault,
        history: Vec::new(),
        loaded: false,
        omitted: 0,
        scroll: 0,
    });
    let mut commands = vec![Command::LoadDetail(id)];
    if let Some(lamp) = lamp {
        state.lamps.for_detail = true;
        state.lamps.wanted = Some(lamp);
        state.lamps.lamp = None;
        state.lamps.status = None;
        commands.push(Command::FindLamp(lamp.to_string()));
    }
    commands
}

/// Closes the detail; the lamp stream it opened closes with it.
fn close_detail(state: &mut State) -> Vec<Command> {
    state.detail = None;
    if state.lamps.for_detail {
        state.lamps = Default::default();
        state.streams.remove(&StreamName::Lamp);
        return vec![Command::StopLamp];
    }
    Vec::new()
}

/// The fault this console is on: its open detail, else the one fault an action being typed
/// or confirmed is for (0: none).
fn engaged(state: &State) -> i64 {
    if let Some(detail) = &state.detail {
        return detail.fault_id;
    }
    match &state.mode {
        Mode::Prompt {
            for_: PromptFor::Note(targets) | PromptFor::Assign(targets),
            ..
        }
        | Mode::Confirm(Confirm { targets, .. })
            if targets.ids.len() == 1 =>
        {
            targets.ids[0].0
        }
        _ => 0,
    }
}

/// Tells the others which fault this console has open (0: none).
fn viewing(fault_id: i64) -> Command {
    Command::Presence(proto::PresenceUpdate {
        viewing_fault_id: fault_id,
        ..Default::default()
    })
}

/// `c`: claims the selected fault ("I am on it"), asks first when someone else holds it, and
/// gives it up when this operator already holds it.
fn claim(state: &mut State) -> Vec<Command> {
    let Some(id) = state
        .selected_row()
        .and_then(|row| state.view.get(row))
        .copied()
    else {
        state.say("select a row first");
        return Vec::new();
    };
    let open = state.detail.as_ref().map_or(0, |d| d.fault_id);
    let holder = state
        .presence
        .get(&id)
        .map(|p| p.claimed_by.clone())
        .unwrap_or_default();
    let mut update = proto::PresenceUpdate {
        viewing_fault_id: open,
        ..Default::default()
    };
    if holder == state.user {
        update.release_fault_id = id;
        state.say(format!("fault {id} released"));
    } else if holder.is_empty() {
        update.claim_fault_id = id;
        state.say(format!("fault {id} claimed: the others see you are on it"));
    } else {
        state.mode = Mode::TakeOver {
            fault_id: id,
            holder,
        };
        return Vec::new();
    }
    vec![Command::Presence(update)]
}

/// Keys that move inside the open detail instead of the board.
fn scroll_detail(state: &mut State, action: Action) -> bool {
    let page = state.page_rows.max(2);
    let Some(detail) = &mut state.detail else {
        return false;
    };
    detail.scroll = match action {
        Action::Down => detail.scroll + 1,
        Action::Up => detail.scroll.saturating_sub(1),
        Action::PageDown => detail.scroll + page,
        Action::PageUp => detail.scroll.saturating_sub(page),
        Action::HalfPageDown => detail.scroll + page / 2,
        Action::HalfPageUp => detail.scroll.saturating_sub(page / 2),
        Action::Top => 0,
        // Clamped to the last line when drawn.
        Action::Bottom => usize::MAX / 2,
        _ => return false,
    };
    true
}

fn act(state: &mut State, action: Action) -> Vec<Command> {
    state.refresh_view();
    if state.tab == Tab::Faults && scroll_detail(state, action) {
        return Vec::new();
    }
    let current = state.selected_row().unwrap_or(state.selected_index);
    let page = state.page_rows.max(1);
    match action {
        Action::Quit => state.quit = true,
        Action::Help => state.mode = Mode::Help { scroll: 0 },
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
        Action::Down if state.selected_row().is_none() && state.left_view.is_none() => {
            move_to(state, 0)
        }
        Action::Down => move_to(state, current + 1),
        Action::Up => move_to(state, current.saturating_sub(1)),
        Action::Top => move_to(state, 0),
        Action::Bottom => move_to(state, usize::MAX),
        Action::PageDown => move_to(state, current + page),
        Action::PageUp => move_to(state, current.saturating_sub(page)),
        Action::HalfPageDown => move_to(state, current + page / 2),
        Action::HalfPageUp => move_to(state, current.saturating_sub(page / 2)),
        Action::Open => {
            // Only a row on screen opens.
            if let Some(fault) = state
                .selected_row()
                .and_then(|row| state.view.get(row))
                .and_then(|id| state.faults.get(id))
                .cloned()
            {
                return open_detail(state, fault.id, Some(fault));
            }
            state.say("select a row first");
        }
        Action::Back => {
            if state.detail.is_some() {
                return close_detail(state);
            }
            state.marks.clear();
        }
        Action::Filter => {
            state.mode = Mode::Filter {
                text: state.filter_text.clone(),
                error: None,
                before: state.filter_text.clone(),
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
            if let Some(id) = state.selected.filter(|_| state.selected_row().is_some()) {
                if !state.marks.remove(&id) {
                    state.marks.insert(id);
                }
                move_to(state, current + 1);
            }
        }
        Action::ClearMarks => state.marks.clear(),
        Action::Acknowledge => return triage_key(state, Verb::Acknowledge),
        Action::Resolve => return triage_key(state, Verb::Resolve),
        Action::Note => return triage_key(state, Verb::Note),
        Action::Assign => return triage_key(state, Verb::Assign),
        Action::PreviousDay | Action::NextDay => {
            let day = state.daily_date.unwrap_or_else(|| today(state));
            let day = if action == Action::PreviousDay {
                day.pred_opt().unwrap_or(day)
            } else {
                day.succ_opt().unwrap_or(day).min(today(state))
            };
            state.daily_date = Some(day);
            return vec![Command::Daily {
                date: day,
                tz: state.tz.name().to_owned(),
            }];
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
        Action::Zoom => state.zoom = !state.zoom,
        Action::Expand => expand(state),
        Action::Fold => fold(state),
        Action::Group => {
            state.grouping = state.grouping.next();
            state.view_dirty = true;
            state.say(format!("board grouped by {}", state.grouping.label()));
        }
        Action::NextInQueue => next_in_queue(state),
        Action::Reconnect => {
            let down = state
                .streams
                .values()
                .any(|link| matches!(link, Link::Down { .. }));
            if down {
                state.say("reconnecting now");
                return vec![Command::Reconnect];
            }
            state.say("every stream is connected");
        }
        Action::Copy => copy_selected(state),
        Action::Claim => return claim(state),
        Action::SortByAge | Action::SortByZone => {
            let key = if action == Action::SortByAge {
                SortKey::Age
            } else {
                SortKey::Zone
            };
            // Pressed again, the same key reverses the order.
            if state.sort == key {
                state.descending = !state.descending;
            } else {
                state.sort = key;
                state.descending = key == SortKey::Age;
            }
            state.view_dirty = true;
        }
    }
    Vec::new()
}

/// Puts the selected fault on the clipboard as one line an operator can paste into a ticket
/// or a chat: id, lamp, zone, type, state, first seen (in the console's zone).
fn copy_selected(state: &mut State) {
    let Some(fault) = state
        .selected_row()
        .and_then(|row| state.view.get(row))
        .and_then(|id| state.faults.get(id))
    else {
        state.say("select a row first");
        return;
    };
    let first_seen = fault
        .first_seen
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
        .map(|t| {
            t.with_timezone(&state.tz)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_else(|| "-".to_owned());
    let on = if fault.lamp_id > 0 {
        format!("lamp {}", fault.lamp_id)
    } else if fault.circuit_id > 0 {
        format!("circuit {}", fault.circuit_id)
    } else {
        format!("basestation {}", fault.basestation_id)
    };
    let zone = match state.zone_name(fault.zone_id) {
        "" => "-".to_owned(),
        name => name.to_owned(),
    };
    let text = format!(
        "fault {} {on} zone {zone} {} {} first seen {first_seen}",
        fault.id,
        fault_type_name(fault.r#type),
        state_name(fault.state),
    );
    state.say(format!("copied: {text}"));
    state.effects.push(Effect::Copy(text));
}

/// Shows a roll-up's lamp faults under it.
fn expand(state: &mut State) {
    let Some(id) = state.selected.filter(|_| state.selected_row().is_some()) else {
        return;
    };
    match state.child_count(id) {
        0 => state.say(format!("fault {id} has no lamp faults under it")),
        n => {
            state.expanded.insert(id);
            state.view_dirty = true;
            state.say(format!(
                "fault {id}: {n} lamp faults shown under it; h folds them"
            ));
        }
    }
}

/// Folds the selected roll-up, or the one the selected lamp fault is under (the cursor moves
/// up to the roll-up).
fn fold(state: &mut State) {
    let Some(id) = state.selected.filter(|_| state.selected_row().is_some()) else {
        return;
    };
    let parent = state.faults.get(&id).map_or(0, |f| f.parent_id);
    let rollup = if state.expanded.contains(&id) {
        id
    } else if state.expanded.contains(&parent) {
        parent
    } else {
        return;
    };
    state.expanded.remove(&rollup);
    state.selected = Some(rollup);
    state.view_dirty = true;
}

/// Moves to the next fault that needs someone (see `triage_queue`), after the selected one
/// in that order, wrapping round.
fn next_in_queue(state: &mut State) {
    let queue = triage_queue(state);
    if queue.is_empty() {
        state.say("nothing waiting: every fault shown is acknowledged");
        return;
    }
    let after = state
        .selected
        .and_then(|id| queue.iter().position(|q| *q == id))
        .map_or(0, |at| (at + 1) % queue.len());
    let id = queue[after];
    // A lamp fault folded under its roll-up is reached through the roll-up.
    if let Some(parent) = state.folded_under(id) {
        state.expanded.insert(parent);
        state.view_dirty = true;
        state.refresh_view();
    }
    if let Some(row) = state.view.iter().position(|v| *v == id) {
        move_to(state, row);
        state.say(format!("{} of {} waiting", after + 1, queue.len()));
    }
}

/// Faults that need someone, most urgent first: not acknowledged, not claimed, shown by the
/// filter, and
/// not a lamp fault under a roll-up that is itself waiting (acting on the roll-up reaches
/// it). Most severe first, then the larger outage (lamp faults under it), then the oldest.
pub fn triage_queue(state: &State) -> Vec<i64> {
    let waiting = |f: &proto::Fault| {
        !f.acknowledged
            && f.state != proto::FaultState::Assigned as i32
            && state.is_shown(f.id)
            && state.claimed_by(f.id).is_none()
    };
    let mut queue: Vec<&proto::Fault> = state
        .faults
        .values()
        .filter(|f| waiting(f))
        .filter(|f| {
            state
                .faults
                .get(&f.parent_id)
                .is_none_or(|parent| !waiting(parent))
        })
        .collect();
    queue.sort_by_key(|f| {
        (
            std::cmp::Reverse(severity_rank(f.severity)),
            std::cmp::Reverse(state.child_count(f.id)),
            f.first_seen.as_ref().map_or(i64::MAX, |t| t.seconds),
            f.id,
        )
    });
    queue.iter().map(|f| f.id).collect()
}

/// The zone a name asks for: an exact name (any case), else the one zone whose name
/// contains it. Otherwise says which zones it could be, or which there are.
pub fn match_zone(query: &str, zones: &[proto::Zone]) -> Result<i64, String> {
    let wanted = query.trim().to_lowercase();
    if let Some(zone) = zones.iter().find(|z| z.name.to_lowercase() == wanted) {
        return Ok(zone.id);
    }
    let mut matches: Vec<&proto::Zone> = zones
        .iter()
        .filter(|z| z.name.to_lowercase().contains(&wanted))
        .collect();
    matches.sort_by(|a, b| a.name.cmp(&b.name));
    let names = |list: &[&proto::Zone]| {
        list.iter()
            .map(|z| z.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matches.as_slice() {
        [one] => Ok(one.id),
        [] => {
            let mut all: Vec<&proto::Zone> = zones.iter().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            if all.is_empty() {
                Err(format!(
                    "no zone matches {query:?}: the estate has no zones"
                ))
            } else {
                Err(format!(
                    "no lamp, telecell or zone matches {query:?}; zones are: {}",
                    names(&all)
                ))
            }
        }
        many => Err(format!("{query:?} could be {}; say which", names(many))),
    }
}

/// Why the selection left the view, for the board's title.
pub fn left_view_words(left: &LeftView) -> String {
    match left {
        LeftView::Hidden(id) => format!("fault {id} hidden by the filter"),
        LeftView::Gone(id) => format!("fault {id} left the board"),
    }
}
#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::console::keymap::Keymap;
    use crate::console::state::{Grouping, LeftView};

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
                targets: vec![(picked, 1)],
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
        assert!(
            update(&mut state, &keymap, key("enter")).is_empty(),
            "a bulk action asks first"
        );
        assert!(matches!(&state.mode, Mode::Confirm(c) if c.targets.ids.len() == 2));
        let commands = update(&mut state, &keymap, key("y"));
        assert_eq!(
            commands,
            vec![Command::Act {
                verb: Verb::Assign,
                targets: vec![(1, 4), (2, 7)],
                text: "crew-7".into()
            }]
        );
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
            Event::Net(NetEvent::Acted {
                verb: Verb::Acknowledge,
                done: Vec::new(),
                refused: vec![Refusal {
                    fault_id: 1,
                    reason: "changed".into(),
                    changed_by: Some(proto::HistoryEntry {
                        at: Some(prost_types::Timestamp {
                            seconds: now().timestamp() - 60,
                            nanos: 0,
                        }),
                        actor: "bo".into(),
                        action: "ASSIGNED".into(),
                        change: "to crew-2".into(),
                        ..Default::default()
                    }),
                    current: Some(current),
                }],
            }),
        );
        let message = &state.message.as_ref().unwrap().1;
        assert_eq!(
            message,
            "not acknowledged: fault 1 changed (assigned to crew-2 by bo 20:59)"
        );
        assert!(message.len() <= 80);
        assert_eq!(state.faults[&1].version, 2);
    }

    fn typed(state: &mut State, keymap: &Keymap, text: &str) {
        for c in text.chars() {
            let name = if c == ' ' {
                "space".to_owned()
            } else {
                c.to_string()
            };
            update(state, keymap, Event::Key(Key::parse(&name).unwrap()));
        }
    }

    #[test]
    fn an_invalid_filter_never_applies_a_prefix_and_esc_restores_the_one_before() {
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
        typed(&mut state, &keymap, "sev>=major");
        state.refresh_view();
        assert_eq!(state.view, vec![1], "a valid filter previews");
        update(&mut state, &keymap, key("enter"));
        assert_eq!(state.filter_text, "sev>=major");
        // Edit it into something invalid: the board shows the filter from before the edit,
        // not the valid prefix "sev>=major type=", and enter refuses it.
        update(&mut state, &keymap, key("/"));
        typed(&mut state, &keymap, " lamp=x");
        state.refresh_view();
        assert!(matches!(&state.mode, Mode::Filter { error: Some(_), .. }));
        assert_eq!(state.filter_text, "sev>=major");
        assert_eq!(state.view, vec![1]);
        update(&mut state, &keymap, key("enter"));
        assert!(
            matches!(&state.mode, Mode::Filter { error: Some(e), .. } if e.contains("not applied"))
        );
        // Esc leaves, and means it: the filter from before the edit.
        update(&mut state, &keymap, key("esc"));
        assert_eq!(state.mode, Mode::Normal);
        assert_eq!(state.filter_text, "sev>=major");
        // A valid preview that is then abandoned with esc is undone too.
        update(&mut state, &keymap, key("/"));
        update(&mut state, &keymap, key("ctrl-u"));
        typed(&mut state, &keymap, "sev>=minor");
        state.refresh_view();
        assert_eq!(state.view.len(), 2);
        update(&mut state, &keymap, key("esc"));
        state.refresh_view();
        assert_eq!(
            (state.filter_text.as_str(), state.view.len()),
            ("sev>=major", 1)
        );
    }

    #[test]
    fn a_filter_that_hides_the_selected_fault_moves_the_cursor_and_keys_never_reach_it() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Minor, 5)),
        );
        state.refresh_view();
        assert_eq!(state.selected, Some(1), "the first row is selected at once");
        update(&mut state, &keymap, key("/"));
        typed(&mut state, &keymap, "sev<=minor");
        update(&mut state, &keymap, key("enter"));
        assert_eq!(
            state.selected,
            Some(2),
            "the cursor moved to a row that is shown"
        );
        assert_eq!(state.left_view, Some(LeftView::Hidden(1)));
        for k in ["a", "R", "n", "A", "enter"] {
            let sent = update(&mut state, &keymap, key(k));
            for command in sent {
                if let Command::Act { targets, .. } = &command {
                    assert!(
                        targets.iter().all(|(id, _)| *id == 2),
                        "{k} reached a hidden fault"
                    );
                }
                if let Command::LoadDetail(id) = command {
                    assert_eq!(id, 2);
                }
            }
            state.mode = Mode::Normal;
            state.detail = None;
        }
        let sent = without_presence(update(&mut state, &keymap, key("a")));
        assert_eq!(
            sent,
            vec![Command::Act {
                verb: Verb::Acknowledge,
                targets: vec![(2, 5)],
                text: String::new()
            }]
        );
    }

    #[test]
    fn mark_then_filter_then_bulk_act_leaves_hidden_marks_alone_and_says_so() {
        let (mut state, keymap) = live_state();
        for (seq, severity) in [
            (1, proto::Severity::Critical),
            (2, proto::Severity::Major),
            (3, proto::Severity::Minor),
            (4, proto::Severity::Warning),
        ] {
            update(
                &mut state,
                &keymap,
                event(seq, fault(seq as i64, severity, 3)),
            );
        }
        state.refresh_view();
        for _ in 0..4 {
            update(&mut state, &keymap, key("space"));
        }
        assert_eq!(state.marks.len(), 4);
        update(&mut state, &keymap, key("/"));
        typed(&mut state, &keymap, "sev>=major");
        update(&mut state, &keymap, key("enter"));
        assert!(
            update(&mut state, &keymap, key("a")).is_empty(),
            "asks first"
        );
        let Mode::Confirm(confirm) = &state.mode else {
            panic!("no confirmation: {:?}", state.mode);
        };
        assert_eq!(
            crate::console::view::confirm_question(confirm),
            "acknowledge 2 faults (2 marked faults hidden by the filter are left alone)? y/n"
        );
        let sent = update(&mut state, &keymap, key("y"));
        assert_eq!(
            sent,
            vec![Command::Act {
                verb: Verb::Acknowledge,
                targets: vec![(1, 3), (2, 3)],
                text: String::new()
            }]
        );
        // n (or anything but y) sends nothing.
        update(&mut state, &keymap, key("R"));
        assert!(update(&mut state, &keymap, key("n")).is_empty());
        assert_eq!(state.mode, Mode::Normal);
    }

    #[test]
    fn a_bulk_outcome_names_every_refusal() {
        let (mut state, keymap) = live_state();
        let done: Vec<proto::Fault> = (1..=3)
            .map(|id| fault(id, proto::Severity::Major, 2))
            .collect();
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Acted {
                verb: Verb::Acknowledge,
                done,
                refused: vec![Refusal {
                    fault_id: 9,
                    reason: String::new(),
                    changed_by: Some(proto::HistoryEntry {
                        at: Some(prost_types::Timestamp {
                            seconds: Utc
                                .with_ymd_and_hms(2026, 11, 28, 4, 24, 0)
                                .unwrap()
                                .timestamp(),
                            nanos: 0,
                        }),
                        actor: "ana".into(),
                        action: "ACKNOWLEDGED".into(),
                        ..Default::default()
                    }),
                    current: None,
                }],
            }),
        );
        assert_eq!(
            state.message.as_ref().unwrap().1,
            "3 acknowledged, 1 refused: fault 9 changed (acked by ana 04:24)"
        );
    }

    #[test]
    fn colon_commands_act_on_the_fault_they_name() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Minor, 6)),
        );
        state.refresh_view();
        assert_eq!(state.selected, Some(1));
        assert_eq!(
            command(&mut state, &keymap, "ack 2"),
            vec![Command::Act {
                verb: Verb::Acknowledge,
                targets: vec![(2, 6)],
                text: String::new()
            }]
        );
        assert!(
            command(&mut state, &keymap, "resolve 2").is_empty(),
            "asks first"
        );
        assert_eq!(
            without_presence(update(&mut state, &keymap, key("y"))),
            vec![Command::Act {
                verb: Verb::Resolve,
                targets: vec![(2, 6)],
                text: String::new()
            }]
        );
        assert_eq!(
            command(&mut state, &keymap, "assign 2 crew-north"),
            vec![Command::Act {
                verb: Verb::Assign,
                targets: vec![(2, 6)],
                text: "crew-north".into()
            }]
        );
        assert!(command(&mut state, &keymap, "ack 77").is_empty());
        assert!(
            state
                .message
                .as_ref()
                .unwrap()
                .1
                .contains("fault 77 is not on the board")
        );
        // :fault jumps to it.
        command(&mut state, &keymap, "fault 2");
        assert_eq!(state.selected, Some(2));
        assert_eq!(state.selected_row().map(|r| state.view[r]), Some(2));
    }

    #[test]
    fn the_detail_follows_its_fault_live_and_scrolls() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Major, 1)),
        );
        state.refresh_view();
        let opened = update(&mut state, &keymap, key("enter"));
        assert_eq!(
            opened,
            vec![
                Command::LoadDetail(1),
                Command::FindLamp("101".into()),
                viewing(1)
            ]
        );
        let mut acked = fault(1, proto::Severity::Major, 2);
        acked.state = proto::FaultState::Acknowledged as i32;
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Fault(proto::FaultEvent {
                seq: 2,
                kind: "ACKNOWLEDGED".into(),
                actor: "bo".into(),
                fault: Some(acked),
                ..Default::default()
            })),
        );
        let detail = state.detail.as_ref().unwrap();
        assert_eq!(detail.fault.as_ref().unwrap().version, 2);
        assert_eq!(detail.history.len(), 1);
        assert_eq!(detail.history[0].actor, "bo");
        // The history read from the server arrives later; the live entry is not doubled.
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Detail(proto::FaultDetail {
                fault: Some(fault(1, proto::Severity::Major, 2)),
                history: vec![proto::HistoryEntry {
                    action: "RAISED".into(),
                    actor: "system".into(),
                    ..Default::default()
                }],
                history_omitted: 0,
            })),
        );
        assert_eq!(state.detail.as_ref().unwrap().history.len(), 2);
        update(&mut state, &keymap, key("j"));
        update(&mut state, &keymap, key("j"));
        assert_eq!(state.detail.as_ref().unwrap().scroll, 2);
        update(&mut state, &keymap, key("g"));
        assert_eq!(state.detail.as_ref().unwrap().scroll, 0);
        // Closing the detail closes its lamp's stream.
        state.lamps.for_detail = true;
        assert_eq!(
            update(&mut state, &keymap, key("esc")),
            vec![Command::StopLamp, viewing(0)]
        );
    }

    #[test]
    fn zones_are_matched_whole_or_uniquely_and_otherwise_listed() {
        let zones = vec![
            proto::Zone {
                id: 1,
                name: "West End".into(),
                ..Default::default()
            },
            proto::Zone {
                id: 2,
                name: "Westbourne".into(),
                ..Default::default()
            },
            proto::Zone {
                id: 3,
                name: "Marylebone".into(),
                ..Default::default()
            },
        ];
        assert_eq!(match_zone("west end", &zones), Ok(1));
        assert_eq!(match_zone("mary", &zones), Ok(3));
        let ambiguous = match_zone("west", &zones).unwrap_err();
        assert!(ambiguous.contains("West End, Westbourne"), "{ambiguous}");
        let none = match_zone("pimlico", &zones).unwrap_err();
        assert!(
            none.contains("zones are: Marylebone, West End, Westbourne"),
            "{none}"
        );
    }

    #[test]
    fn a_failed_lookup_message_is_cleared_by_the_next_successful_one() {
        let (mut state, keymap) = live_state();
        command(&mut state, &keymap, "zone pimlico");
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::LookupFailed(
                "no lamp, telecell or zone matches".into(),
            )),
        );
        assert!(state.message.is_some());
        assert_eq!(
            state.lamps.failed.as_deref(),
            Some("no lamp, telecell or zone matches")
        );
        let found = update(&mut state, &keymap, Event::Net(NetEvent::ZoneFound(3)));
        assert_eq!(found, vec![Command::WatchZone(3)]);
        assert!(state.message.is_none(), "{:?}", state.message);
        assert!(state.lamps.failed.is_none());
        assert!(command(&mut state, &keymap, "zone").is_empty());
        assert!(state.message.as_ref().unwrap().1.starts_with("give a zone"));
    }

    #[test]
    fn zone_names_complete_after_colon_zone() {
        let (mut state, keymap) = live_state();
        state.zones = [
            (1, "West End".to_owned()),
            (2, "Westbourne".to_owned()),
            (3, "Marylebone".to_owned()),
        ]
        .into_iter()
        .collect();
        update(&mut state, &keymap, key(":"));
        typed(&mut state, &keymap, "zone mar");
        update(&mut state, &keymap, key("tab"));
        assert_eq!(
            state.mode,
            Mode::Command {
                text: "zone Marylebone".into(),
                history_at: None
            }
        );
        update(&mut state, &keymap, key("esc"));
        update(&mut state, &keymap, key(":"));
        typed(&mut state, &keymap, "zone w");
        update(&mut state, &keymap, key("tab"));
        assert_eq!(
            state.mode,
            Mode::Command {
                text: "zone West".into(),
                history_at: None
            }
        );
        assert!(
            state
                .message
                .as_ref()
                .unwrap()
                .1
                .contains("West End  Westbourne")
        );
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
        let daily = update(&mut state, &keymap, key("enter"));
        assert_eq!(state.tz, chrono_tz::Australia::Melbourne);
        // Daily Faults follows: Melbourne's day, in Melbourne's calendar.
        assert_eq!(
            daily,
            vec![Command::Daily {
                date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
                tz: "Australia/Melbourne".into()
            }]
        );
        update(&mut state, &keymap, key(":"));
        update(&mut state, &keymap, Event::Key(Key::parse("q").unwrap()));
        update(&mut state, &keymap, key("enter"));
        assert!(state.quit);
    }

    fn command(state: &mut State, keymap: &Keymap, line: &str) -> Vec<Command> {
        update(state, keymap, key(":"));
        typed(state, keymap, line);
        without_presence(update(state, keymap, key("enter")))
    }

    /// What a key sends besides telling the others which fault the console is on.
    fn without_presence(commands: Vec<Command>) -> Vec<Command> {
        commands
            .into_iter()
            .filter(|c| !matches!(c, Command::Presence(_)))
            .collect()
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

    /// A circuit roll-up (id 50) and `lamps` lamp faults under it (ids 51..), plus a lone
    /// MINOR fault (id 1); the lamp faults arrive before their roll-up, as they can.
    fn outage(state: &mut State, keymap: &Keymap, lamps: i64) {
        let mut seq = 0;
        let mut send = |state: &mut State, fault: proto::Fault| {
            seq += 1;
            update(state, keymap, event(seq, fault));
        };
        send(state, fault(1, proto::Severity::Minor, 1));
        for id in 51..51 + lamps {
            send(
                state,
                proto::Fault {
                    r#type: proto::FaultType::SupplyLoss as i32,
                    circuit_id: 38,
                    parent_id: 50,
                    ..fault(id, proto::Severity::Major, 1)
                },
            );
        }
        send(
            state,
            proto::Fault {
                r#type: proto::FaultType::CircuitSupplyLoss as i32,
                lamp_id: 0,
                circuit_id: 38,
                ..fault(50, proto::Severity::Critical, 1)
            },
        );
        state.refresh_view();
    }

    #[test]
    fn an_outage_is_one_row_that_expands_folds_and_acts_on_its_lamps_after_asking() {
        let (mut state, keymap) = live_state();
        outage(&mut state, &keymap, 5);
        assert_eq!(
            state.view,
            vec![50, 1],
            "the lamp faults fold under their roll-up"
        );
        assert_eq!(state.child_count(50), 5);
        assert_eq!(state.selected, Some(50));

        update(&mut state, &keymap, key("l"));
        assert_eq!(state.view, vec![50, 55, 54, 53, 52, 51, 1]);
        // On a lamp fault, h folds its roll-up and the cursor climbs to it.
        update(&mut state, &keymap, key("j"));
        assert_eq!(state.selected, Some(55));
        update(&mut state, &keymap, key("h"));
        assert_eq!(state.view, vec![50, 1]);
        assert_eq!(state.selected, Some(50));

        // Acting on the roll-up asks first, with the count, then sends one call.
        assert!(without_presence(update(&mut state, &keymap, key("a"))).is_empty());
        let Mode::Confirm(confirm) = &state.mode else {
            panic!("a roll-up asks first: {:?}", state.mode)
        };
        assert_eq!(confirm.targets.children, 5);
        assert_eq!(
            state.viewing_sent, 50,
            "the others see ana is on the roll-up"
        );
        assert!(
            crate::console::view::confirm_question(confirm).contains("5 lamp faults"),
            "{}",
            crate::console::view::confirm_question(confirm)
        );
        assert_eq!(
            without_presence(update(&mut state, &keymap, key("y"))),
            vec![Command::Act {
                verb: Verb::Acknowledge,
                targets: vec![(50, 1)],
                text: String::new(),
            }]
        );
    }

    #[test]
    fn a_filter_that_shows_only_lamp_faults_lists_them_and_grouping_clusters_rows() {
        let (mut state, keymap) = live_state();
        outage(&mut state, &keymap, 3);
        for k in ["/", "s", "e", "v", "=", "m", "a", "j", "o", "r", "enter"] {
            update(&mut state, &keymap, key(k));
        }
        state.refresh_view();
        // The roll-up is filtered out, so its lamp faults are rows of their own.
        assert_eq!(state.view.len(), 3, "{:?}", state.view);
        update(&mut state, &keymap, key("esc"));
        for k in ["/", "ctrl-u", "enter"] {
            update(&mut state, &keymap, key(k));
        }
        update(&mut state, &keymap, key("b"));
        state.refresh_view();
        assert_eq!(state.grouping, Grouping::Circuit);
        assert_eq!(
            state.view,
            vec![50, 1],
            "circuit 38 first, faults without one last"
        );
    }

    #[test]
    fn n_walks_the_faults_waiting_most_severe_then_largest_outage_then_oldest() {
        let (mut state, keymap) = live_state();
        outage(&mut state, &keymap, 4);
        // Two more CRITICAL faults on single lamps, one older than the other, and a MAJOR
        // one already acknowledged.
        update(
            &mut state,
            &keymap,
            event(100, fault(7, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(101, fault(8, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(
                102,
                proto::Fault {
                    acknowledged: true,
                    state: proto::FaultState::Acknowledged as i32,
                    ..fault(9, proto::Severity::Major, 2)
                },
            ),
        );
        state.refresh_view();
        // The outage (4 lamps) first, then the older single lamp (8 is older than 7), then
        // the MINOR one; the lamp faults under the waiting roll-up and the acked fault never.
        assert_eq!(triage_queue(&state), vec![50, 8, 7, 1]);
        let mut visited = Vec::new();
        for _ in 0..5 {
            update(&mut state, &keymap, key("N"));
            visited.push(state.selected.unwrap());
        }
        assert_eq!(
            visited,
            vec![8, 7, 1, 50, 8],
            "from the roll-up on, round again"
        );
        // What the filter hides is skipped.
        for k in [
            "/", "s", "e", "v", ">", "=", "c", "r", "i", "t", "i", "c", "a", "l", "enter",
        ] {
            update(&mut state, &keymap, key(k));
        }
        assert_eq!(triage_queue(&state), vec![50, 8, 7]);
    }

    #[test]
    fn a_new_critical_rings_once_per_burst_and_the_badge_clears_when_the_operator_looks() {
        let (mut state, keymap) = live_state();
        update(&mut state, &keymap, key("3"));
        update(
            &mut state,
            &keymap,
            event(1, fault(1, proto::Severity::Critical, 1)),
        );
        assert_eq!(state.unseen_critical, 1);
        assert!(state.effects.is_empty(), "the bell is off by default");
        command(&mut state, &keymap, "set bell");
        update(
            &mut state,
            &keymap,
            event(2, fault(2, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(3, fault(3, proto::Severity::Critical, 1)),
        );
        update(
            &mut state,
            &keymap,
            event(4, fault(4, proto::Severity::Minor, 1)),
        );
        assert_eq!(state.unseen_critical, 3);
        assert_eq!(
            state.effects,
            vec![
                Effect::Bell,
                Effect::Title("(+3 critical) singularity http://test".into())
            ]
        );
        state.effects.clear();
        // A key on another tab is not looking at the board; a key on the board is.
        update(&mut state, &keymap, key("j"));
        assert_eq!(state.unseen_critical, 3);
        update(&mut state, &keymap, key("1"));
        assert_eq!(state.unseen_critical, 0);
        assert_eq!(
            state.effects,
            vec![Effect::Title("singularity http://test".into())]
        );
    }

    #[test]
    fn y_copies_the_selected_fault_and_reconnect_wakes_only_a_stream_that_is_down() {
        let (mut state, keymap) = live_state();
        state.zones.insert(1, "Marylebone".into());
        update(
            &mut state,
            &keymap,
            event(1, fault(3, proto::Severity::Major, 1)),
        );
        state.refresh_view();
        update(&mut state, &keymap, key("y"));
        assert_eq!(
            state.effects,
            vec![Effect::Copy(
                "fault 3 lamp 103 zone Marylebone LAMP_FAILURE OPEN first seen 2026-11-28 20:57 GMT"
                    .into()
            )]
        );
        assert!(update(&mut state, &keymap, key("ctrl-r")).is_empty());
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Link(
                StreamName::Billing,
                Link::Down {
                    since: now(),
                    retry_at: now() + Duration::seconds(30),
                    error: "connection refused".into(),
                },
            )),
        );
        assert_eq!(
            update(&mut state, &keymap, key("ctrl-r")),
            vec![Command::Reconnect]
        );
    }

    #[test]
    fn up_in_the_filter_brings_back_earlier_filters_and_down_returns() {
        let (mut state, keymap) = live_state();
        for filter in ["sev>=major", "zone=west"] {
            update(&mut state, &keymap, key("/"));
            update(&mut state, &keymap, key("ctrl-u"));
            for c in filter.chars() {
                update(
                    &mut state,
                    &keymap,
                    Event::Key(Key::parse(&c.to_string()).unwrap()),
                );
            }
            update(&mut state, &keymap, key("enter"));
        }
        update(&mut state, &keymap, key("/"));
        update(&mut state, &keymap, key("ctrl-u"));
        update(&mut state, &keymap, key("up"));
        assert_eq!(state.filter_text, "zone=west");
        update(&mut state, &keymap, key("up"));
        assert_eq!(state.filter_text, "sev>=major");
        update(&mut state, &keymap, key("up"));
        assert_eq!(state.filter_text, "sev>=major", "the oldest stays");
        update(&mut state, &keymap, key("down"));
        assert_eq!(state.filter_text, "zone=west");
        update(&mut state, &keymap, key("esc"));
        assert_eq!(
            state.filter_text, "zone=west",
            "esc restores the filter from before"
        );
    }

    #[test]
    fn c_claims_asks_before_taking_another_operators_claim_and_releases_its_own() {
        let (mut state, keymap) = live_state();
        update(
            &mut state,
            &keymap,
            event(1, fault(4, proto::Severity::Major, 1)),
        );
        state.refresh_view();
        assert_eq!(
            update(&mut state, &keymap, key("c")),
            vec![Command::Presence(proto::PresenceUpdate {
                claim_fault_id: 4,
                ..Default::default()
            })]
        );
        let held_by = |user: &str| {
            Event::Net(NetEvent::Presence(proto::PresenceBoard {
                faults: vec![proto::FaultPresence {
                    fault_id: 4,
                    claimed_by: user.into(),
                    ..Default::default()
                }],
                refused: String::new(),
            }))
        };
        // Another operator holds it: asked first, naming them.
        update(&mut state, &keymap, held_by("bo"));
        assert!(
            triage_queue(&state).is_empty(),
            "a claimed fault is not waiting"
        );
        assert!(update(&mut state, &keymap, key("c")).is_empty());
        assert_eq!(
            state.mode,
            Mode::TakeOver {
                fault_id: 4,
                holder: "bo".into()
            }
        );
        assert_eq!(
            update(&mut state, &keymap, key("y")),
            vec![Command::Presence(proto::PresenceUpdate {
                claim_fault_id: 4,
                take_over: true,
                ..Default::default()
            })]
        );
        // Held by this operator: c gives it up.
        update(&mut state, &keymap, held_by("ana"));
        assert_eq!(
            update(&mut state, &keymap, key("c")),
            vec![Command::Presence(proto::PresenceUpdate {
                release_fault_id: 4,
                ..Default::default()
            })]
        );
        // Opening and closing the detail tells the others.
        let opened = update(&mut state, &keymap, key("enter"));
        assert!(opened.contains(&Command::Presence(proto::PresenceUpdate {
            viewing_fault_id: 4,
            ..Default::default()
        })));
        let closed = update(&mut state, &keymap, key("esc"));
        assert!(closed.contains(&Command::Presence(proto::PresenceUpdate::default())));
    }

    #[test]
    fn a_view_is_saved_by_name_and_brought_back() {
        let (mut state, keymap) = live_state();
        for k in [
            "/", "s", "e", "v", ">", "=", "m", "a", "j", "o", "r", "enter", "O", "b",
        ] {
            update(&mut state, &keymap, key(k));
        }
        let commands = command(&mut state, &keymap, "view save night");
        let [Command::SaveView { name, view }] = commands.as_slice() else {
            panic!("{commands:?}")
        };
        assert_eq!(name, "night");
        assert_eq!(
            (
                view.filter.as_str(),
                view.sort.as_str(),
                view.descending,
                view.grouping.as_str()
            ),
            ("sev>=major", "age", true, "circuit")
        );
        let saved = view.clone();
        assert!(command(&mut state, &keymap, "view two words").is_empty());
        assert!(state.message.as_ref().unwrap().1.contains("give a name"));
        // Elsewhere, later: the view comes back whole.
        for k in ["/", "ctrl-u", "enter", "s", "b"] {
            update(&mut state, &keymap, key(k));
        }
        assert_eq!(
            command(&mut state, &keymap, "view night"),
            vec![Command::LoadView("night".into())]
        );
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::View("night".into(), saved)),
        );
        assert_eq!(state.filter_text, "sev>=major");
        assert_eq!(state.sort, SortKey::Age);
        assert_eq!(state.grouping, Grouping::Circuit);
        assert!(
            state
                .message
                .as_ref()
                .unwrap()
                .1
                .starts_with("view night: filter sev>=major")
        );
    }

    #[test]
    fn handover_asks_from_the_last_wall_time_shows_and_saves_markdown() {
        let (mut state, keymap) = live_state();
        // 21:00 in London: "19:00" is two hours ago, "22:00" yesterday evening.
        assert_eq!(
            command(&mut state, &keymap, "handover 19:00"),
            vec![Command::Handover {
                since: now() - Duration::hours(2),
                tz: "Europe/London".into(),
            }]
        );
        assert_eq!(
            command(&mut state, &keymap, "handover 22:00"),
            vec![Command::Handover {
                since: now() - Duration::hours(23),
                tz: "Europe/London".into(),
            }]
        );
        assert!(command(&mut state, &keymap, "handover save /tmp/shift.md").is_empty());
        assert!(
            state
                .message
                .as_ref()
                .unwrap()
                .1
                .contains("no handover yet")
        );
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Handover(proto::HandoverResponse {
                opened: 3,
                time_zone: "Europe/London".into(),
                ..Default::default()
            })),
        );
        assert_eq!(state.mode, Mode::Handover { scroll: 0 });
        update(&mut state, &keymap, key("j"));
        assert_eq!(state.mode, Mode::Handover { scroll: 1 });
        update(&mut state, &keymap, key("esc"));
        assert_eq!(state.mode, Mode::Normal);
        let saved = command(&mut state, &keymap, "handover save /tmp/shift.md");
        let [Command::WriteText { path, text }] = saved.as_slice() else {
            panic!("{saved:?}")
        };
        assert_eq!(path, &std::path::PathBuf::from("/tmp/shift.md"));
        assert!(text.contains("3 opened"), "{text}");
        assert!(command(&mut state, &keymap, "handover 7pm").is_empty());
        assert!(state.message.as_ref().unwrap().1.contains("HH:MM"));
    }
}
