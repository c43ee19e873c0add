//! The Faults tab: the live board (only the rows in view are built), the detail pane of the
//! open fault with its history and lamp, and the Daily Faults panel with its 24-hour sparkline.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, Wrap};

use super::theme::{Theme, severity_glyph};
use crate::console::filter::{fault_type_name, severity_rank};
use crate::console::state::State;
use crate::console::update::state_name;

const DAILY_HEIGHT: u16 = 6;

/// Board rows in a frame `height` lines tall: less tabs, status, keys, daily panel, borders
/// and the header.
pub fn board_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3 + DAILY_HEIGHT + 3))
}

pub fn draw(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let [board, daily] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(DAILY_HEIGHT)]).areas(area);
    match &state.detail {
        Some(_) if board.width >= 120 => {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(board);
            draw_board(frame, left, state, theme);
            draw_detail(frame, right, state, theme);
        }
        Some(_) => draw_detail(frame, board, state, theme),
        None => draw_board(frame, board, state, theme),
    }
    draw_daily(frame, daily, state, theme);
}

pub fn age(since: Option<&prost_types::Timestamp>, now: DateTime<Utc>) -> String {
    let Some(at) = since.and_then(|t| DateTime::from_timestamp(t.seconds, 0)) else {
        return "-".to_owned();
    };
    let minutes = (now - at).num_minutes().max(0);
    match minutes {
        m if m < 60 => format!("{m}m"),
        m if m < 48 * 60 => format!("{}h{:02}", m / 60, m % 60),
        m => format!("{}d", m / (24 * 60)),
    }
}

fn local_time(at: Option<&prost_types::Timestamp>, tz: chrono_tz::Tz) -> String {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&tz).format("%H:%M").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn draw_board(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let inner_rows = usize::from(area.height.saturating_sub(3));
    let total = state.view.len();
    let selected = state.selected_row();
    // The window keeps the selected row in view without moving it when rows arrive above.
    let start = match selected {
        Some(row) if row >= inner_rows => row + 1 - inner_rows,
        _ => 0,
    }
    .min(total.saturating_sub(inner_rows));
    let rows: Vec<Row<'_>> = state.view[start..(start + inner_rows).min(total)]
        .iter()
        .enumerate()
        .filter_map(|(offset, id)| {
            let fault = state.faults.get(id)?;
            let rank = severity_rank(fault.severity);
            let marked = state.marks.contains(id);
            let mut style = theme.severity(rank);
            if Some(start + offset) == selected {
                style = style.patch(theme.selected);
            }
            let assignee = if fault.assignee.is_empty() {
                "-".to_owned()
            } else {
                fault.assignee.clone()
            };
            let mut state_text = state_name(fault.state).to_owned();
            if fault.flapping {
                state_text.push('~');
            }
            let what = if fault.lamp_id > 0 {
                fault.lamp_id.to_string()
            } else if fault.circuit_id > 0 {
                format!("c{}", fault.circuit_id)
            } else {
                format!("b{}", fault.basestation_id)
            };
            Some(
                Row::new(vec![
                    Cell::from(if marked { "*" } else { " " }).style(theme.marked),
                    Cell::from(severity_glyph(rank)),
                    Cell::from(local_time(fault.first_seen.as_ref(), state.tz)),
                    Cell::from(age(fault.first_seen.as_ref(), state.now)),
                    Cell::from(what),
                    Cell::from(state.zone_name(fault.zone_id).to_owned()),
                    Cell::from(fault_type_name(fault.r#type)),
                    Cell::from(state_text),
                    Cell::from(fault.count.to_string()),
                    Cell::from(assignee),
                ])
                .style(style),
            )
        })
        .collect();
    let header = Row::new(vec![
        "", "SEV", "TIME", "AGE", "LAMP", "ZONE", "TYPE", "STATE", "N", "ASSIGNEE",
    ])
    .style(theme.title);
    let widths = [
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Fill(2),
        Constraint::Fill(3),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Fill(2),
    ];
    let mut title = format!(
        " faults {}/{} sorted by {}{} ",
        total,
        state.faults.len(),
        state.sort.label(),
        if state.descending { " desc" } else { "" }
    );
    if !state.filter_text.is_empty() {
        title.push_str(&format!("filter: {} ", state.filter_text));
    }
    if !state.marks.is_empty() {
        title.push_str(&format!("{} marked ", state.marks.len()));
    }
    if state.selected.is_some() && selected.is_none() {
        title.push_str("(selected fault left the view) ");
    }
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn draw_detail(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let Some(detail) = &state.detail else {
        return;
    };
    let mut lines: Vec<Line<'_>> = Vec::new();
    match state.faults.get(&detail.fault_id) {
        Some(f) => {
            let rank = severity_rank(f.severity);
            lines.push(Line::from(vec![
                Span::styled(severity_glyph(rank), theme.severity(rank)),
                Span::styled(
                    format!(" {} on lamp {}", fault_type_name(f.r#type), f.lamp_id),
                    theme.title,
                ),
            ]));
            lines.push(Line::from(format!(
                "{} v{}  seen {} times  zone {}  circuit {}  {}",
                state_name(f.state),
                f.version,
                f.count,
                state.zone_name(f.zone_id),
                f.circuit_id,
                if f.assignee.is_empty() {
                    "unassigned".to_owned()
                } else {
                    format!("assigned to {}", f.assignee)
                }
            )));
        }
        None => lines.push(Line::from(Span::styled(
            format!("fault {} has left the board (resolved)", detail.fault_id),
            theme.muted,
        ))),
    }
    if let Some(status) = &state.lamps.status {
        lines.push(Line::from(Span::styled("lamp now", theme.title)));
        lines.push(Line::from(super::lamps::status_line(status, state)));
    }
    let neighbours = state
        .faults
        .get(&detail.fault_id)
        .map(|f| {
            state
                .faults
                .values()
                .filter(|o| o.id != f.id && o.circuit_id == f.circuit_id && f.circuit_id > 0)
                .count()
        })
        .unwrap_or(0);
    lines.push(Line::from(format!(
        "{neighbours} other active fault(s) on the same circuit"
    )));
    lines.push(Line::from(Span::styled("history", theme.title)));
    if detail.history.is_empty() {
        lines.push(Line::from(Span::styled("loading…", theme.muted)));
    }
    for entry in detail.history.iter().rev() {
        lines.push(Line::from(format!(
            "{} {:<12} {:<10} {}",
            local_time(entry.at.as_ref(), state.tz),
            entry.action,
            entry.actor,
            entry.note
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" detail (esc closes) "),
        ),
        area,
    );
}

fn draw_daily(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let block = Block::default().borders(Borders::ALL);
    let Some(daily) = &state.daily else {
        frame.render_widget(
            Paragraph::new("Daily Faults: loading…").block(block.title(" Daily Faults ")),
            area,
        );
        return;
    };
    let title = format!(
        " Daily Faults {} ({} h, {}): {} opened  (< > another day) ",
        daily.date, daily.hours, daily.time_zone, daily.total
    );
    let inner = block.inner(area);
    frame.render_widget(block.title(title), area);
    let [counts, spark] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    let mut by_severity = [0u32; 5];
    let mut by_type: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for count in &daily.counts {
        by_severity[usize::from(severity_rank(count.severity))] += count.count;
        *by_type.entry(fault_type_name(count.r#type)).or_default() += count.count;
    }
    let mut top: Vec<(&str, u32)> = by_type.into_iter().collect();
    top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let severity_line = Line::from(
        [4u8, 3, 2, 1]
            .iter()
            .flat_map(|rank| {
                [
                    Span::styled(
                        format!(
                            "{} {} ",
                            severity_glyph(*rank).trim(),
                            by_severity[usize::from(*rank)]
                        ),
                        theme.severity(*rank),
                    ),
                    Span::raw(" "),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let type_lines: Vec<Line<'_>> = top
        .chunks(2)
        .take(3)
        .map(|pair| {
            Line::from(
                pair.iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            )
        })
        .collect();
    let mut lines = vec![severity_line];
    lines.extend(type_lines);
    frame.render_widget(Paragraph::new(lines), counts);
    let hours: Vec<u64> = daily.by_hour.iter().map(|n| u64::from(*n)).collect();
    let peak = hours.iter().max().copied().unwrap_or(0);
    let [label, bars] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(spark);
    frame.render_widget(
        Paragraph::new(format!(
            "by hour, 00 to {:02}, peak {peak}",
            daily.hours.saturating_sub(1)
        ))
        .style(theme.muted),
        label,
    );
    frame.render_widget(
        Sparkline::default()
            .data(hours)
            .style(theme.accent)
            .bar_set(ratatui::symbols::bar::THREE_LEVELS),
        bars,
    );
}
