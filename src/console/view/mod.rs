//! Drawing: pure functions of `&State` into a frame. The frame: tabs on top, the tab's body,
//! a status bar (streams, server, user, clock, event rate) and a line for keys or input.
//! Below 80x24 it says so instead.

mod billing;
mod faults;
mod lamps;
pub mod theme;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::keymap::{Action, Keymap};
use super::state::{Link, Mode, PromptFor, State, TABS, Tab};
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
    if state.mode == Mode::Help {
        draw_help(frame, body, keymap, theme);
    }
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
            "signed out at {}: restart the console to sign in",
            since.with_timezone(&tz).format("%H:%M")
        ),
    }
}

fn draw_status(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let mut spans = vec![
        Span::styled(
            format!(
                "{} {}",
                state.now.with_timezone(&state.tz).format("%H:%M:%S"),
                state.tz
            ),
            theme.title,
        ),
        Span::styled(" | ", theme.muted),
    ];
    for (stream, link) in &state.streams {
        let style = if *link == Link::Live {
            theme.ok
        } else {
            theme.bad
        };
        spans.push(Span::styled(
            format!(
                "{}: {}",
                stream.label(),
                link_text(link, state.now, state.tz)
            ),
            style,
        ));
        spans.push(Span::styled(" | ", theme.muted));
    }
    let who = match state.role {
        Some(role) if state.may_triage() => format!("{} ({})", state.user, role.as_str()),
        Some(role) => format!("{} ({}, read-only)", state.user, role.as_str()),
        None => state.user.clone(),
    };
    spans.push(Span::raw(format!(
        "{} ev/min | {} | {}",
        state.event_rate(),
        who,
        state.server
    )));
    frame.render_widget(Paragraph::new(Line::from(spans)).style(Style::new()), area);
}

fn draw_bottom(frame: &mut Frame<'_>, area: Rect, state: &State, keymap: &Keymap, theme: &Theme) {
    let line = match &state.mode {
        Mode::Filter { text, error } => {
            let (mark, style) = match error {
                Some(_) => ("✗", theme.bad),
                None => ("✓", theme.ok),
            };
            let mut spans = vec![
                Span::styled(format!("/{text}"), style),
                Span::styled(format!("  {mark} "), style),
            ];
            if let Some(error) = error {
                spans.push(Span::styled(error.clone(), theme.bad));
            } else {
                spans.push(Span::styled("enter keeps it, esc leaves", theme.muted));
            }
            Line::from(spans)
        }
        Mode::Command { text, .. } => Line::from(vec![
            Span::styled(format!(":{text}"), theme.accent),
            Span::styled("  tab completes, up/down history", theme.muted),
        ]),
        Mode::Prompt { for_, text } => {
            let label = match for_ {
                PromptFor::Note(ids) => format!("note for {} fault(s)", ids.len()),
                PromptFor::Assign(ids) => format!("assign {} fault(s) to", ids.len()),
                PromptFor::FindLamp => "lamp id, telecell uuid or zone".to_owned(),
                PromptFor::Password => format!(
                    "the session ended; password for {} (esc: later, with :login)",
                    state.user
                ),
            };
            // A password is never drawn, not even masked: its length stays private too.
            let shown = if matches!(for_, PromptFor::Password) {
                String::new()
            } else {
                text.clone()
            };
            Line::from(vec![
                Span::styled(format!("{label}: "), theme.title),
                Span::raw(shown),
                Span::styled("▏", theme.accent),
            ])
        }
        _ => match &state.message {
            Some((at, message)) if state.now - *at < chrono::Duration::seconds(15) => {
                Line::from(Span::styled(message.clone(), theme.accent))
            }
            _ => Line::from(Span::styled(context_keys(state, keymap), theme.muted)),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
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
        ],
        Tab::Faults => &[
            (Action::Help, "help"),
            (Action::Open, "detail"),
            (Action::Filter, "filter"),
            (Action::Freeze, "freeze"),
            (Action::SortNext, "sort"),
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
    let mut text: Vec<String> = actions
        .iter()
        .map(|(action, label)| format!("{} {label}", keymap.first_key(*action)))
        .collect();
    if state.tab == Tab::Faults {
        if !state.may_triage() {
            text.push("(read-only role: no triage)".to_owned());
        } else if !state.connected() {
            text.push("(actions off while disconnected)".to_owned());
        }
    }
    text.join("  ")
}

fn draw_help(frame: &mut Frame<'_>, area: Rect, keymap: &Keymap, theme: &Theme) {
    let popup_width = usize::from(area.width.saturating_sub(4));
    let mut help = keymap.help();
    if help.len() + 2 > usize::from(area.height) {
        // Two columns: each action's first key only, so the text fits.
        help = help
            .into_iter()
            .map(|(keys, what)| (keys.split('/').next().unwrap_or("").to_owned(), what))
            .collect();
    }
    let width = help
        .iter()
        .map(|(keys, _)| keys.len())
        .max()
        .unwrap_or(0)
        .min(popup_width / 4);
    let mut lines: Vec<Line<'_>> = help
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>width$}  "), theme.accent),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = area.inner(ratatui::layout::Margin {
        horizontal: 1,
        vertical: 0,
    });
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys, from the keymap (any key closes) ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    // Two columns when one does not fit.
    let per_column = usize::from(inner.height).max(1);
    if lines.len() <= per_column {
        frame.render_widget(Paragraph::new(lines), inner);
    } else {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
        let rest = lines.split_off(per_column.min(lines.len()));
        frame.render_widget(Paragraph::new(lines), left);
        frame.render_widget(Paragraph::new(rest), right);
    }
}
