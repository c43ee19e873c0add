//! Drawing: pure functions of `&State` into a frame. The frame: tabs on top, the tab's body,
//! a status bar (streams, server, user, clock, event rate) and a line for keys or input.
//! Below 80x24 it says so instead.

mod billing;
mod clock;
mod faults;
pub mod fit;
mod lamps;
pub mod theme;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::keymap::{Action, Keymap};
use super::state::Verb;
use super::state::{Confirm, Link, Mode, PromptFor, State, TABS, Tab};
use fit::Part;
pub use theme::Theme;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Board rows the Faults tab shows in a frame of `height` lines (for paging).
pub fn board_rows(height: u16) -> usize {
    faults::board_rows(height)
}

pub fn draw(frame: &mut Frame<'_>, state: &State, keymap: &Keymap, theme: &Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "singularity needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {}x{}.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [tabs, body, status, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, tabs, state, theme);
    match state.tab {
        Tab::Faults => faults::draw(frame, body, state, theme),
        Tab::Lamps => lamps::draw(frame, body, state, theme),
        Tab::Billing => billing::draw(frame, body, state, theme),
    }
    draw_status(frame, status, state, theme);
    draw_bottom(frame, bottom, state, keymap, theme);
    if let Mode::Help { scroll } = state.mode {
        draw_help(frame, body, keymap, theme, scroll);
    }
    if let (Mode::Handover { scroll }, Some(handover)) = (&state.mode, &state.handover) {
        draw_handover(frame, body, handover, state, theme, *scroll);
    }
}

/// The handover over the tab, as its Markdown reads (table rules left out), scrolled.
fn draw_handover(
    frame: &mut Frame<'_>,
    area: Rect,
    handover: &crate::proto::HandoverResponse,
    state: &State,
    theme: &Theme,
    scroll: usize,
) {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" handover (j/k scroll, :handover save FILE keeps it, any other key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width).max(10);
    let text = crate::handover::markdown(handover, state.tz);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with("|---")) {
        let heading = line.starts_with('#');
        let line = line.trim_start_matches('#').trim_start();
        for part in wrap(line, width) {
            lines.push(if heading {
                Line::from(Span::styled(part, theme.title))
            } else {
                Line::from(part)
            });
        }
    }
    let rows = usize::from(inner.height).max(1);
    let first = scroll.min(lines.len().saturating_sub(rows));
    let shown: Vec<Line<'_>> = lines.into_iter().skip(first).take(rows).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

fn draw_tabs(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let mut spans = vec![Span::styled(" singularity ", theme.title)];
    for tab in TABS {
        let style = if tab == state.tab {
            theme.selected
        } else {
            theme.muted
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!(" {} ", tab.title()), style));
    }
    if state.unseen_critical > 0 {
        spans.push(Span::styled(
            format!("  +{} critical since you looked", state.unseen_critical),
            theme.bad,
        ));
    }
    if let Some(frozen) = &state.frozen {
        spans.push(Span::styled(
            format!(
                "  FROZEN +{} new / {} changed (f to release)",
                frozen.new.len(),
                frozen.changed.len()
            ),
            theme.bad,
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// "live", "reconnecting in 4s (stale since 21:03)".
pub fn link_text(link: &Link, now: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    match link {
        Link::Connecting => "connecting".to_owned(),
        Link::Live => "live".to_owned(),
        Link::Down {
            since, retry_at, ..
        } => {
            let wait = (*retry_at - now).num_seconds().max(0);
            format!(
                "reconnecting in {wait}s, stale since {}",
                since.with_timezone(&tz).format("%H:%M")
            )
        }
        Link::SignedOut { since, .. } => format!(
            "signed out at {}: :login signs in again",
            since.with_timezone(&tz).format("%H:%M")
        ),
    }
}

/// The status bar: clock, each stream's state, event rate, who is signed in, the server.
/// When it does not fit, the event rate, the server and the clock's zone go first; the
/// streams' state (and so any stale marker) and the user and role always stay.
fn draw_status(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let local = state.now.with_timezone(&state.tz);
    let mut parts = vec![Part {
        span: Span::styled(
            format!("{} {}", local.format("%H:%M:%S"), state.tz),
            theme.title,
        ),
        priority: 4,
    }];
    for (stream, link) in &state.streams {
        let style = if *link == Link::Live {
            theme.ok
        } else {
            theme.bad
        };
        parts.push(Part {
            span: Span::styled(
                format!(
                    "{}: {}",
                    stream.label(),
                    link_text(link, state.now, state.tz)
                ),
                style,
            ),
            priority: if *link == Link::Live { 6 } else { 9 },
        });
    }
    let who = match state.role {
        Some(role) if state.may_triage() => format!("{} ({})", state.user, role.as_str()),
        Some(role) => format!("{} ({}, read-only)", state.user, role.as_str()),
        None => state.user.clone(),
    };
    parts.push(Part {
        span: Span::raw(format!("{} ev/min", state.event_rate())),
        priority: 1,
    });
    parts.push(Part {
        span: Span::styled(who, theme.title),
        priority: 10,
    });
    parts.push(Part {
        span: Span::raw(state.server.clone()),
        priority: 2,
    });
    let spans = fit::by_priority(
        parts,
        Span::styled(" | ", theme.muted),
        usize::from(area.width),
    );
    frame.render_widget(Paragraph::new(Line::from(spans)).style(Style::new()), area);
}

fn draw_bottom(frame: &mut Frame<'_>, area: Rect, state: &State, keymap: &Keymap, theme: &Theme) {
    let width = usize::from(area.width);
    let line = match &state.mode {
        Mode::Filter { text, error, .. } => {
            let (mark, style) = match error {
                Some(_) => ("✗", theme.bad),
                None => ("✓", theme.ok),
            };
            let hint = match error {
                Some(error) => format!(" {mark} {error}"),
                None => format!(" {mark} enter keeps it, esc restores the filter before"),
            };
            // The text being typed keeps its end in view; the hint gets what is left.
            let shown = fit::tail(&format!("/{text}"), width.saturating_sub(12).max(8));
            let room = width.saturating_sub(shown.chars().count());
            Line::from(vec![
                Span::styled(shown, style),
                Span::styled(
                    fit::fit(&hint, room),
                    if error.is_some() {
                        theme.bad
                    } else {
                        theme.muted
                    },
                ),
            ])
        }
        Mode::Command { text, .. } => {
            let shown = fit::tail(&format!(":{text}"), width.saturating_sub(2));
            let room = width.saturating_sub(shown.chars().count());
            Line::from(vec![
                Span::styled(shown, theme.accent),
                Span::styled(
                    fit::fit("  tab completes, up/down history, esc leaves", room),
                    theme.muted,
                ),
            ])
        }
        Mode::Confirm(confirm) => Line::from(Span::styled(
            fit::fit(&confirm_question(confirm), width),
            theme.bad,
        )),
        Mode::TakeOver { fault_id, holder } => Line::from(Span::styled(
            fit::fit(
                &format!("fault {fault_id} is claimed by {holder}: take it over? y/n"),
                width,
            ),
            theme.bad,
        )),
        Mode::Prompt { for_, text } => {
            let label = match for_ {
                PromptFor::Note(targets) => {
                    format!(
                        "note for {}{}",
                        count(targets.ids.len()),
                        hidden_words(targets.hidden)
                    )
                }
                PromptFor::Assign(targets) => format!(
                    "assign {}{} to",
                    count(targets.ids.len()),
                    hidden_words(targets.hidden)
                ),
                PromptFor::FindLamp => "lamp id, telecell uuid or zone".to_owned(),
                PromptFor::Password => format!(
                    "the session ended; password for {} (esc: later, with :login)",
                    state.user
                ),
            };
            let label = fit::fit(&format!("{label}: "), width / 2);
            // A password is never drawn, not even masked: its length stays private too.
            let shown = if matches!(for_, PromptFor::Password) {
                String::new()
            } else {
                fit::tail(text, width.saturating_sub(label.chars().count() + 1))
            };
            Line::from(vec![
                Span::styled(label, theme.title),
                Span::raw(shown),
                Span::styled("▏", theme.accent),
            ])
        }
        _ => match &state.message {
            Some((at, message)) if state.now - *at < chrono::Duration::seconds(15) => {
                Line::from(Span::styled(fit::fit(message, width), theme.accent))
            }
            _ => Line::from(Span::styled(
                fit::fit(&context_keys(state, keymap), width),
                theme.muted,
            )),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// "1 fault", "3 faults".
fn count(n: usize) -> String {
    if n == 1 {
        "1 fault".to_owned()
    } else {
        format!("{n} faults")
    }
}

fn hidden_words(hidden: usize) -> String {
    match hidden {
        0 => String::new(),
        1 => " (1 marked fault hidden by the filter is left alone)".to_owned(),
        n => format!(" ({n} marked faults hidden by the filter are left alone)"),
    }
}

/// "acknowledge 3 faults (2 marked faults hidden by the filter are left alone)? y/n"
pub fn confirm_question(confirm: &Confirm) -> String {
    let what = match confirm.verb {
        Verb::Assign => format!(
            "assign {} to {}",
            count(confirm.targets.ids.len()),
            confirm.text
        ),
        verb => {
            let ids = if confirm.targets.ids.len() == 1 {
                format!("fault {}", confirm.targets.ids[0].0)
            } else {
                count(confirm.targets.ids.len())
            };
            format!("{} {ids}", verb.present())
        }
    };
    let under = match confirm.targets.children {
        0 => String::new(),
        1 => " and the lamp fault under it".to_owned(),
        n if confirm.targets.ids.len() == 1 => format!(" and the {n} lamp faults under it"),
        n => format!(" and the {n} lamp faults under them"),
    };
    format!("{what}{under}{}? y/n", hidden_words(confirm.targets.hidden))
}

/// The keys that matter on this tab, from the keymap.
fn context_keys(state: &State, keymap: &Keymap) -> String {
    let actions: &[(Action, &str)] = match state.tab {
        // Triage keys are shown only when they would do something.
        Tab::Faults if state.connected() && state.may_triage() => &[
            (Action::Help, "help"),
            (Action::Open, "detail"),
            (Action::Acknowledge, "ack"),
            (Action::Assign, "assign"),
            (Action::Resolve, "resolve"),
            (Action::Note, "note"),
            (Action::Mark, "mark"),
            (Action::Filter, "filter"),
            (Action::Freeze, "freeze"),
            (Action::SortNext, "sort"),
            (Action::Zoom, "zoom"),
        ],
        Tab::Faults => &[
            (Action::Help, "help"),
            (Action::Open, "detail"),
            (Action::Filter, "filter"),
            (Action::Freeze, "freeze"),
            (Action::SortNext, "sort"),
            (Action::Zoom, "zoom"),
        ],
        Tab::Lamps => &[
            (Action::Help, "help"),
            (Action::FindLamp, "find lamp"),
            (Action::Command, "command"),
        ],
        Tab::Billing => &[
            (Action::Help, "help"),
            (Action::BillingPeriod, "period"),
            (Action::Command, ":bill YYYY-MM"),
        ],
    };
    let mut text: Vec<String> = Vec::new();
    if state.tab == Tab::Faults {
        if !state.may_triage() {
            text.push("(read-only role: no triage)".to_owned());
        } else if !state.connected() {
            text.push("(actions off while disconnected)".to_owned());
        }
    }
    text.extend(
        actions
            .iter()
            .map(|(action, label)| format!("{} {label}", keymap.first_key(*action))),
    );
    text.join("  ")
}

/// Every key of the keymap over the whole tab (so no pane border shows through), with
/// whole descriptions wrapped, in two columns when wide enough, scrolled with j/k.
fn draw_help(frame: &mut Frame<'_>, area: Rect, keymap: &Keymap, theme: &Theme, scroll: usize) {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys, from the keymap (j/k scroll, any other key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let help = keymap.help();
    let columns = if inner.width >= 100 { 2 } else { 1 };
    let column_width = usize::from(inner.width) / columns;
    let key_width = help
        .iter()
        .map(|(keys, _)| keys.chars().count())
        .max()
        .unwrap_or(0)
        .min(column_width / 3);
    let text_width = column_width.saturating_sub(key_width + 3).max(10);
    // Each entry: its keys, then its description wrapped under itself.
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (keys, what) in &help {
        for (i, part) in wrap(what, text_width).into_iter().enumerate() {
            let keys = if i == 0 {
                fit::fit(keys, key_width)
            } else {
                String::new()
            };
            lines.push(Line::from(vec![
                Span::styled(format!(" {keys:>key_width$}  "), theme.accent),
                Span::raw(part),
            ]));
        }
    }
    let rows = usize::from(inner.height).max(1);
    let pages = lines.len().div_ceil(rows * columns).max(1);
    let first = scroll.min((pages - 1) * rows * columns);
    let shown: Vec<Line<'_>> = lines.into_iter().skip(first).collect();
    let areas =
        Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(inner);
    for (column, area) in areas.iter().enumerate() {
        let part: Vec<Line<'_>> = shown
            .iter()
            .skip(column * rows)
            .take(rows)
            .cloned()
            .collect();
        frame.render_widget(Paragraph::new(part), *area);
    }
}

/// Words into lines of at most `width` columns (a longer word is cut with "…").
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let word = fit::fit(word, width);
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// How old a pane's data is, for its title: nothing while fresh (under 10 s), else
/// " · 40 s old", " · 2 m old", " · 3 h old".
pub fn data_age(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = at else {
        return String::new();
    };
    match (now - at).num_seconds() {
        s if s < 10 => String::new(),
        s if s < 60 => format!(" · {s} s old"),
        s if s < 3_600 => format!(" · {} m old", s / 60),
        s => format!(" · {} h old", s / 3_600),
    }
}
