//! The Faults tab: the live board (only the rows in view are built), the detail pane of the
//! open fault with its history and lamp, and the Daily Faults panel with its 24-hour sparkline.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, Wrap};

use super::clock::{age, local_time};
use super::fit::{column_widths, fit, fit_owned};
use super::theme::{Theme, severity_glyph};
use super::wrap;
use crate::console::filter::{fault_type_name, severity_rank};
use crate::console::state::{Grouping, Mode, SortKey, State, on_board};
use crate::console::update::{left_view_words, state_name};
use crate::proto;

/// Daily Faults' height: counts and a sparkline; taller (more types, a taller chart) on a
/// tall terminal.
fn daily_height(height: u16) -> u16 {
    if height >= 40 { 10 } else { 6 }
}

/// Board rows in a frame `height` lines tall: less tabs, status, keys, the daily panel,
/// borders and the header.
pub fn board_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3 + daily_height(height) + 3))
}

pub fn draw(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let daily_lines = if state.zoom {
        0
    } else {
        daily_height(area.height + 3)
    };
    let [board, daily] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(daily_lines)]).areas(area);
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
    if daily_lines > 0 {
        draw_daily(frame, daily, state, theme);
    }
}

/// A board column: its header, its width, and what a fault shows in it.
struct Column {
    header: &'static str,
    width: Constraint,
    cell: fn(&proto::Fault, &State) -> String,
}

/// The columns for a board `width` wide: id, severity, age, what, zone, type, state, count
/// and assignee always; the time opened, the circuit and the last sighting when there is
/// room for them.
fn columns(width: u16) -> Vec<Column> {
    let wide = width >= 120;
    let mut columns = vec![
        Column {
            header: "ID",
            width: Constraint::Length(6),
            cell: |f, _| f.id.to_string(),
        },
        Column {
            header: "SEV",
            // Room for the sort mark beside the header.
            width: Constraint::Length(4),
            cell: |f, _| severity_glyph(severity_rank(f.severity)).to_owned(),
        },
    ];
    if wide {
        columns.push(Column {
            header: "OPENED",
            width: Constraint::Length(6),
            cell: |f, s| local_time(f.first_seen.as_ref(), s.tz),
        });
    }
    columns.push(Column {
        header: "AGE",
        width: Constraint::Length(5),
        cell: |f, s| age(f.first_seen.as_ref(), s.now),
    });
    columns.push(Column {
        header: "ON",
        width: Constraint::Length(7),
        cell: |f, s| {
            // A lamp fault shown under its roll-up is drawn as a branch of it.
            if f.parent_id > 0 && s.expanded.contains(&f.parent_id) {
                format!("└{}", on_what(f))
            } else {
                on_what(f)
            }
        },
    });
    columns.push(Column {
        header: "ZONE",
        width: Constraint::Fill(2),
        cell: |f, s| s.zone_name(f.zone_id).to_owned(),
    });
    if wide {
        columns.push(Column {
            header: "CIRCUIT",
            width: Constraint::Length(7),
            cell: |f, _| {
                if f.circuit_id > 0 {
                    format!("c{}", f.circuit_id)
                } else {
                    "-".to_owned()
                }
            },
        });
    }
    columns.push(Column {
        header: "TYPE",
        width: Constraint::Fill(3),
        cell: |f, s| match s.child_count(f.id) {
            0 => fault_type_name(f.r#type).to_owned(),
            n => {
                let fold = if s.expanded.contains(&f.id) {
                    "▾"
                } else {
                    "▸"
                };
                // The count first, so a narrow column keeps it.
                format!("{fold}{n} lamps {}", fault_type_name(f.r#type))
            }
        },
    });
    columns.push(Column {
        header: "STATE",
        width: Constraint::Length(9),
        cell: |f, _| {
            let mut text = state_name(f.state).to_owned();
            if f.flapping {
                text.push('~');
            }
            text
        },
    });
    columns.push(Column {
        header: "N",
        width: Constraint::Length(4),
        cell: |f, _| f.count.to_string(),
    });
    if wide {
        columns.push(Column {
            header: "LAST",
            width: Constraint::Length(5),
            cell: |f, s| local_time(f.last_seen.as_ref(), s.tz),
        });
    }
    if wide {
        columns.push(Column {
            header: "WHO",
            width: Constraint::Length(8),
            cell: |f, s| presence_cell(s, f.id),
        });
    }
    columns.push(Column {
        header: "ASSIGNEE",
        width: Constraint::Fill(2),
        cell: if wide {
            |f, _| {
                if f.assignee.is_empty() {
                    "-".to_owned()
                } else {
                    f.assignee.clone()
                }
            }
        } else {
            // No room for a column of its own: who is on the fault shows where nobody is
            // assigned yet.
            |f, s| match (f.assignee.is_empty(), presence_cell(s, f.id)) {
                (false, _) => f.assignee.clone(),
                (true, who) if !who.is_empty() => who,
                _ => "-".to_owned(),
            }
        },
    });
    columns
}

/// Who is on a fault, for the detail: "claimed by ana until 04:30 · open on bo's console".
fn presence_words(state: &State, fault_id: i64) -> String {
    let Some(presence) = state.presence.get(&fault_id) else {
        return String::new();
    };
    let mut parts = Vec::new();
    if !presence.claimed_by.is_empty() {
        let until = local_time(presence.claim_expires.as_ref(), state.tz);
        parts.push(format!("claimed by {} until {until}", presence.claimed_by));
    }
    let others: Vec<&str> = presence
        .viewers
        .iter()
        .map(String::as_str)
        .filter(|v| *v != state.user)
        .collect();
    if !others.is_empty() {
        parts.push(format!("also open on {}'s console", others.join(", ")));
    }
    parts.join(" · ")
}

/// Who is on a fault, for its row: "✓ana" for a claim, else "◎bo" (+ how many more).
fn presence_cell(state: &State, fault_id: i64) -> String {
    let Some(presence) = state.presence.get(&fault_id) else {
        return String::new();
    };
    if !presence.claimed_by.is_empty() {
        return format!("✓{}", presence.claimed_by);
    }
    match presence.viewers.as_slice() {
        [] => String::new(),
        [one] => format!("◎{one}"),
        [first, rest @ ..] => format!("◎{first}+{}", rest.len()),
    }
}

/// The header of the column the board is sorted by.
fn sorted_header(key: SortKey) -> &'static str {
    match key {
        SortKey::Severity => "SEV",
        SortKey::Age => "AGE",
        SortKey::Lamp => "ON",
        SortKey::Zone => "ZONE",
        SortKey::Type => "TYPE",
        SortKey::State => "STATE",
        SortKey::Count => "N",
    }
}

/// The group a row belongs to when the board is grouped.
fn group_of(state: &State, fault: &proto::Fault) -> String {
    match state.grouping {
        Grouping::Zone => match state.zone_name(fault.zone_id) {
            "" => "no zone".to_owned(),
            name => name.to_owned(),
        },
        _ if fault.circuit_id > 0 => format!("c{}", fault.circuit_id),
        _ => "no circuit".to_owned(),
    }
}

/// What a fault is on: a lamp id, or for roll-ups its circuit (c7) or basestation (b3).
fn on_what(fault: &proto::Fault) -> String {
    if fault.lamp_id > 0 {
        fault.lamp_id.to_string()
    } else if fault.circuit_id > 0 {
        format!("c{}", fault.circuit_id)
    } else {
        format!("b{}", fault.basestation_id)
    }
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
    let mut columns = columns(area.width);
    if state.grouping != Grouping::Off {
        columns.insert(
            0,
            Column {
                header: if state.grouping == Grouping::Zone {
                    "ZONE"
                } else {
                    "CIRCUIT"
                },
                width: Constraint::Fill(2),
                // Filled in per row below: only the first row of each group names it.
                cell: |_, _| String::new(),
            },
        );
    }
    let mut constraints = vec![Constraint::Length(1)];
    constraints.extend(columns.iter().map(|c| c.width));
    // The widths the table will give each column, so text is cut with an ellipsis, not bare.
    let widths = column_widths(&constraints, area.width.saturating_sub(2));
    // Each group's size, counted once per frame (grouped boards only).
    let mut group_sizes: std::collections::HashMap<String, usize> = Default::default();
    if state.grouping != Grouping::Off {
        for fault in state.view.iter().filter_map(|id| state.faults.get(id)) {
            *group_sizes.entry(group_of(state, fault)).or_default() += 1;
        }
    }
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
            let mut cells = vec![Cell::from(if marked { "*" } else { " " }).style(theme.marked)];
            cells.extend(
                columns.iter().zip(&widths[1..]).map(|(column, width)| {
                    Cell::from(fit_owned((column.cell)(fault, state), *width))
                }),
            );
            if state.grouping != Grouping::Off {
                let index = start + offset;
                let group = group_of(state, fault);
                let first = index == start
                    || state.view[..index]
                        .last()
                        .and_then(|id| state.faults.get(id))
                        .is_none_or(|previous| group_of(state, previous) != group);
                if first {
                    let size = group_sizes.get(&group).copied().unwrap_or(0);
                    cells[1] = Cell::from(fit_owned(format!("{group} ({size})"), widths[1]));
                }
            }
            if !state.connected() {
                // The feed is down: what is shown may be out of date.
                style = style.add_modifier(ratatui::style::Modifier::DIM);
            }
            Some(Row::new(cells).style(style))
        })
        .collect();
    let mut header = vec![String::new()];
    let sorted = sorted_header(state.sort);
    let arrow = if state.descending { "▼" } else { "▲" };
    header.extend(columns.iter().zip(&widths[1..]).map(|(c, width)| {
        if c.header == sorted {
            fit(&format!("{}{arrow}", c.header), *width)
        } else {
            fit(c.header, *width)
        }
    }));
    let header = Row::new(header).style(theme.title);
    let mut title = format!(
        " faults {}/{} sorted by {}{} ",
        total,
        state.faults.len(),
        state.sort.label(),
        if state.descending { " desc" } else { "" }
    );
    if state.grouping != Grouping::Off {
        title.push_str(&format!("grouped by {} ", state.grouping.label()));
    }
    if !state.filter_text.is_empty() {
        let label = if matches!(state.mode, Mode::Filter { .. }) {
            "preview"
        } else {
            "filter"
        };
        title.push_str(&format!("{label}: {} ", state.filter_text));
    }
    if !state.marks.is_empty() {
        let hidden = state
            .marks
            .iter()
            .filter(|id| !state.is_shown(**id))
            .count();
        title.push_str(&format!("{} marked ", state.marks.len()));
        if hidden > 0 {
            title.push_str(&format!("({hidden} hidden) "));
        }
    }
    if let Some(left) = &state.left_view {
        title.push_str(&format!("({}) ", left_view_words(left)));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(fit(&title, usize::from(area.width.saturating_sub(2))));
    if total == 0 {
        let text = empty_board(state);
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.muted))
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let table = Table::new(rows, constraints)
        .header(header)
        .column_spacing(1)
        .block(block);
    frame.render_widget(table, area);
}

/// What an empty board says: that the feed is live and since when, or why it shows nothing.
fn empty_board(state: &State) -> String {
    let since = state
        .live_since
        .map(|t| t.with_timezone(&state.tz).format("%H:%M").to_string());
    match (state.faults.len(), since) {
        (0, Some(since)) => format!("no active faults; feed live since {since}"),
        (0, None) => "no faults yet: waiting for the feed".to_owned(),
        (n, _) => format!(
            "no fault matches the filter ({n} active faults hidden); / to change it, esc in the filter restores"
        ),
    }
}

/// The open fault: header, lamp readings (their lines reserved, so nothing jumps when they
/// arrive), its roll-up, then the history, newest first with repeats collapsed. Scrolls.
fn draw_detail(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let Some(detail) = &state.detail else {
        return;
    };
    let width = usize::from(area.width.saturating_sub(2));
    let fault = detail
        .fault
        .as_ref()
        .or_else(|| state.faults.get(&detail.fault_id));
    let mut lines: Vec<Line<'_>> = Vec::new();
    // Lines that scroll with the history, above it.
    let mut scrolled: Vec<Line<'_>> = Vec::new();
    match fault {
        Some(f) => {
            let rank = severity_rank(f.severity);
            lines.push(Line::from(vec![
                Span::styled(severity_glyph(rank), theme.severity(rank)),
                Span::styled(
                    fit(
                        &format!(
                            " fault {} v{}: {} on {}",
                            f.id,
                            f.version,
                            fault_type_name(f.r#type),
                            subject(f)
                        ),
                        width.saturating_sub(3),
                    ),
                    theme.title,
                ),
            ]));
            let mut facts = format!(
                "{}{}  seen {} times  zone {}",
                state_name(f.state),
                if on_board(f) { "" } else { " (off the board)" },
                f.count,
                state.zone_name(f.zone_id),
            );
            if f.circuit_id > 0 && f.lamp_id > 0 {
                facts.push_str(&format!("  circuit {}", f.circuit_id));
            }
            facts.push_str(&if f.assignee.is_empty() {
                "  unassigned".to_owned()
            } else {
                format!("  assigned to {}", f.assignee)
            });
            if f.parent_id > 0 {
                facts.push_str(&format!("  under fault {}", f.parent_id));
            }
            lines.push(Line::from(fit(&facts, width)));
            lines.push(Line::from(fit(
                &format!(
                    "opened {}  last seen {}",
                    local_time(f.first_seen.as_ref(), state.tz),
                    local_time(f.last_seen.as_ref(), state.tz)
                ),
                width,
            )));
            let who = presence_words(state, f.id);
            if !who.is_empty() {
                lines.push(Line::from(Span::styled(fit(&who, width), theme.accent)));
            }
            if f.lamp_id > 0 {
                lines.push(Line::from(Span::styled("lamp now", theme.title)));
                let now = match state
                    .lamps
                    .status
                    .as_ref()
                    .filter(|s| s.lamp_id == f.lamp_id)
                {
                    Some(status) => super::lamps::status_line(status, state),
                    None => "waiting for the lamp's latest reading…".to_owned(),
                };
                lines.push(Line::from(fit(&now, width)));
                let neighbours = state
                    .faults
                    .values()
                    .filter(|o| o.id != f.id && o.circuit_id == f.circuit_id && f.circuit_id > 0)
                    .count();
                lines.push(Line::from(fit(
                    &format!("{neighbours} other active fault(s) on the same circuit"),
                    width,
                )));
            } else {
                // A roll-up can carry hundreds of lamps: its part scrolls with the history.
                scrolled.extend(rolled_up(f, state, width, theme));
            }
        }
        None => lines.push(Line::from(Span::styled(
            format!("fault {}: loading…", detail.fault_id),
            theme.muted,
        ))),
    }
    let fixed = lines.len();
    lines.push(Line::from(Span::styled(
        if scrolled.is_empty() {
            "history (newest first; j/k scroll)"
        } else {
            "rolled up under it, then its history (j/k scroll)"
        },
        theme.title,
    )));
    let mut history: Vec<Line<'_>> = scrolled;
    if !history.is_empty() {
        history.push(Line::from(Span::styled(
            "history (newest first)",
            theme.title,
        )));
    }
    if detail.history.is_empty() {
        history.push(Line::from(Span::styled(
            if detail.loaded {
                "no history"
            } else {
                "loading…"
            },
            theme.muted,
        )));
    }
    for entry in collapse(&detail.history).iter().rev() {
        for (i, part) in wrap(&history_words(entry, state), width)
            .into_iter()
            .enumerate()
        {
            history.push(Line::from(if i == 0 {
                part
            } else {
                format!("      {part}")
            }));
        }
    }
    if detail.omitted > 0 {
        history.push(Line::from(Span::styled(
            format!("{} older entries not shown", detail.omitted),
            theme.muted,
        )));
    }
    // The header and the lamp stay; the history scrolls under them.
    let room = usize::from(area.height.saturating_sub(2)).saturating_sub(fixed + 1);
    let scroll = detail.scroll.min(history.len().saturating_sub(room.max(1)));
    if scroll > 0 {
        lines[fixed] = Line::from(Span::styled(
            format!("scrolled {scroll} lines (k or g to return)"),
            theme.title,
        ));
    }
    lines.extend(history.into_iter().skip(scroll));
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(fit(" detail (esc closes) ", width)),
        ),
        area,
    );
}

/// What a fault is on, for people: "lamp 1003", "circuit 7", "basestation 3".
fn subject(fault: &proto::Fault) -> String {
    if fault.lamp_id > 0 {
        format!("lamp {}", fault.lamp_id)
    } else if fault.circuit_id > 0 {
        format!("circuit {}", fault.circuit_id)
    } else {
        format!("basestation {}", fault.basestation_id)
    }
}

/// A roll-up's lamps and the lamp faults grouped under it.
fn rolled_up<'a>(
    fault: &proto::Fault,
    state: &State,
    width: usize,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let mut children: Vec<&proto::Fault> = state
        .faults
        .values()
        .filter(|c| c.parent_id == fault.id)
        .collect();
    children.sort_by_key(|c| c.lamp_id);
    let mut lines = vec![Line::from(Span::styled(
        format!("{} lamp fault(s) rolled up under it", children.len()),
        theme.title,
    ))];
    if children.is_empty() {
        lines.push(Line::from(Span::styled(
            "none on the board now (the history says how many lamps it began with)",
            theme.muted,
        )));
    } else {
        let lamps: Vec<String> = children.iter().map(|c| c.lamp_id.to_string()).collect();
        for part in wrap(&format!("lamps {}", lamps.join(" ")), width) {
            lines.push(Line::from(part));
        }
        // By type and state, then their ids: "95 SUPPLY_LOSS OPEN: faults 2 3 4 ...".
        let mut groups: std::collections::BTreeMap<(&str, &str), Vec<i64>> =
            std::collections::BTreeMap::new();
        for c in &children {
            groups
                .entry((fault_type_name(c.r#type), state_name(c.state)))
                .or_default()
                .push(c.id);
        }
        for ((kind, fault_state), mut ids) in groups {
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            let text = format!(
                "{} {kind} {fault_state}: faults {}",
                ids.len(),
                ids.join(" ")
            );
            for part in wrap(&text, width) {
                lines.push(Line::from(part));
            }
        }
    }
    lines
}

/// A history entry, or a run of repeats collapsed into one.
struct Shown<'a> {
    entry: &'a proto::HistoryEntry,
    repeats: usize,
    last: Option<&'a prost_types::Timestamp>,
}

/// Runs of REPEATED entries become one "REPEATED x14 04:29-04:41".
fn collapse(history: &[proto::HistoryEntry]) -> Vec<Shown<'_>> {
    let mut shown: Vec<Shown<'_>> = Vec::new();
    for entry in history {
        if entry.action == "REPEATED"
            && let Some(run) = shown.last_mut()
            && run.entry.action == "REPEATED"
        {
            run.repeats += 1;
            run.last = entry.at.as_ref();
            continue;
        }
        shown.push(Shown {
            entry,
            repeats: 1,
            last: entry.at.as_ref(),
        });
    }
    shown
}

/// "04:24 ASSIGNED to crew-north by ana: note", "04:29-04:41 REPEATED x14".
fn history_words(shown: &Shown<'_>, state: &State) -> String {
    let entry = shown.entry;
    let mut text = local_time(entry.at.as_ref(), state.tz);
    if shown.repeats > 1 {
        text.push_str(&format!(
            "-{} {} x{}",
            local_time(shown.last, state.tz),
            entry.action,
            shown.repeats
        ));
        return text;
    }
    text.push(' ');
    text.push_str(&entry.action);
    if !entry.change.is_empty() {
        text.push(' ');
        text.push_str(&entry.change);
    }
    text.push_str(&format!(" by {}", entry.actor));
    if entry.from_state != entry.to_state && entry.from_state != 0 {
        text.push_str(&format!(
            " ({} -> {})",
            state_name(entry.from_state),
            state_name(entry.to_state)
        ));
    }
    if !entry.note.is_empty() {
        text.push_str(": ");
        text.push_str(&entry.note);
    }
    text
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
    let length = if daily.minutes % 60 == 0 {
        format!("{} h", daily.minutes / 60)
    } else {
        format!("{:.1} h", f64::from(daily.minutes) / 60.0)
    };
    let title = format!(
        " Daily Faults {} ({length}, {}): {} opened  (< > another day) ",
        daily.date, daily.time_zone, daily.total
    );
    let inner = block.inner(area);
    frame.render_widget(
        block.title(fit(&title, usize::from(area.width.saturating_sub(2)))),
        area,
    );
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
        .take(usize::from(counts.height.saturating_sub(1)))
        .map(|pair| {
            Line::from(
                pair.iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect::<Vec<_>>()
                    .join("  "),
            )
        })
        .map(|line: Line<'_>| Line::from(fit(&line.to_string(), usize::from(counts.width))))
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
