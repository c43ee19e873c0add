//! The Billing tab: today and month to date live, or a chosen period; totals by zone as a
//! table and a bar chart, with savings against the unmetered baseline.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{BarChart, Block, Borders, Paragraph, Row, Table};

use super::fit::{Part, by_priority, column_widths, fit};
use super::theme::Theme;
use crate::console::state::{BillingPeriod, State};
use crate::figures::{covered, energy, pounds};
use crate::proto;

pub fn draw(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let live = state.billing_live.as_ref();
    let (label, totals) = match state.billing_period {
        BillingPeriod::MonthToDate => (
            "month to date (live)".to_owned(),
            live.and_then(|l| l.month_to_date.as_ref()),
        ),
        BillingPeriod::Today => (
            "today (live)".to_owned(),
            live.and_then(|l| l.today.as_ref()),
        ),
        BillingPeriod::LastMonth => ("last month".to_owned(), state.billing_totals.as_ref()),
        BillingPeriod::Month(first) => (
            first.format("%Y-%m").to_string(),
            state.billing_totals.as_ref(),
        ),
        BillingPeriod::Range(from, to) => (format!("{from}..{to}"), state.billing_totals.as_ref()),
    };
    let [summary, rest] = Layout::vertical([Constraint::Length(4), Constraint::Min(4)]).areas(area);
    let summary_lines = match (
        live.and_then(|l| l.today.as_ref()),
        live.and_then(|l| l.month_to_date.as_ref()),
    ) {
        (Some(today), Some(month)) => {
            let width = usize::from(summary.width.saturating_sub(2));
            vec![
                total_line("today", today, theme, width),
                total_line("month to date", month, theme, width),
            ]
        }
        _ => vec![Line::from(Span::styled(
            "waiting for live totals…",
            theme.muted,
        ))],
    };
    frame.render_widget(
        Paragraph::new(summary_lines).block(Block::default().borders(Borders::ALL).title(format!(
            " energy and cost{} (p: period, :bill YYYY-MM) ",
            super::data_age(state.billing_at, state.now)
        ))),
        summary,
    );
    let Some(totals) = totals else {
        frame.render_widget(
            Paragraph::new(format!("{label}: loading…"))
                .block(Block::default().borders(Borders::ALL)),
            rest,
        );
        return;
    };
    // Wide: the table and beside it the chart (or one lamp's day). Narrow: one of them, the
    // whole width, so the table's figures are never cut.
    let (table_area, chart_area) = if rest.width >= 120 {
        let [table, chart] =
            Layout::horizontal([Constraint::Percentage(68), Constraint::Percentage(32)])
                .areas(rest);
        (Some(table), chart)
    } else if state.billing_lamp.is_some() {
        (None, rest)
    } else {
        (Some(rest), Rect::default())
    };
    if let Some(table_area) = table_area {
        draw_table(frame, table_area, &label, totals, theme);
    }
    if chart_area.area() == 0 {
        return;
    }
    if let Some(lamp) = &state.billing_lamp {
        draw_lamp(frame, chart_area, lamp, theme);
        return;
    }
    // Bars in kWh, or in Wh while every zone is under 10 kWh (a young estate), so no bar
    // reads as zero; the title says which, and the scale.
    let tallest = totals.rows.iter().map(|r| r.energy_wh).max().unwrap_or(0);
    let (unit, divisor) = if tallest >= 10_000 {
        ("kWh", 1_000)
    } else {
        ("Wh", 1)
    };
    let bars: Vec<(String, u64)> = totals
        .rows
        .iter()
        .map(|r| {
            (
                r.key.chars().take(4).collect(),
                u64::try_from(r.energy_wh / divisor).unwrap_or(0),
            )
        })
        .collect();
    let data: Vec<(&str, u64)> = bars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let chart_title = format!(" {unit} by zone, tallest {} {unit} ", tallest / divisor);
    frame.render_widget(
        BarChart::default()
            .block(Block::default().borders(Borders::ALL).title(fit(
                &chart_title,
                usize::from(chart_area.width.saturating_sub(2)),
            )))
            .data(&data)
            .bar_width(4)
            .bar_gap(1)
            .bar_style(theme.accent)
            .value_style(theme.title),
        chart_area,
    );
}

/// Totals by zone, each figure cut with an ellipsis if its column is too narrow.
fn draw_table(
    frame: &mut Frame<'_>,
    area: Rect,
    label: &str,
    totals: &proto::Totals,
    theme: &Theme,
) {
    let due = totals.expected_slots;
    let constraints = [
        Constraint::Min(10),
        Constraint::Length(11),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(10),
    ];
    let widths = column_widths(&constraints, area.width.saturating_sub(2));
    let cells = |texts: Vec<String>| -> Vec<String> {
        texts
            .iter()
            .zip(&widths)
            .map(|(text, width)| fit(text, *width))
            .collect()
    };
    let missing_style = |r: &proto::TotalsRow| {
        if r.lamps_missing > 0 {
            theme.bad
        } else {
            theme.muted
        }
    };
    let row = |r: &proto::TotalsRow| {
        let texts = cells(vec![
            r.key.clone(),
            energy(r.energy_wh),
            pounds(r.cost_millipence),
            r.lamps.to_string(),
            r.lamps_missing.to_string(),
            covered(r, due),
            pounds(r.savings_millipence),
        ]);
        Row::new(
            texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let cell = ratatui::widgets::Cell::from(text);
                    if i == 4 {
                        cell.style(missing_style(r))
                    } else {
                        cell
                    }
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut rows: Vec<Row<'_>> = totals.rows.iter().map(row).collect();
    if let Some(total) = &totals.total {
        rows.push(row(total).style(theme.title));
    }
    let header = Row::new(cells(
        ["ZONE", "ENERGY", "COST", "LAMPS", "MISS", "DATA", "SAVED"]
            .map(str::to_owned)
            .to_vec(),
    ))
    .style(theme.title);
    let title = format!(
        " {label}: {} to {}, {} half-hours due ",
        totals.from, totals.to, totals.expected_slots
    );
    let table = Table::new(rows, constraints).header(header).block(
        Block::default()
            .borders(Borders::ALL)
            .title(fit(&title, usize::from(area.width.saturating_sub(2)))),
    );
    frame.render_widget(table, area);
}

/// One lamp's day: totals and its half-hours as a sparkline.
fn draw_lamp(frame: &mut Frame<'_>, area: Rect, lamp: &proto::LampEnergy, theme: &Theme) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" lamp {} on {} ", lamp.lamp_id, lamp.date));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, bars] = Layout::vertical([Constraint::Length(4), Constraint::Min(1)]).areas(inner);
    let t = lamp.total.clone().unwrap_or_default();
    let missing = lamp.slots.iter().filter(|s| s.missing).count();
    let tallest = lamp.slots.iter().map(|s| s.energy_wh).max().unwrap_or(0);
    let width = usize::from(text.width);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                fit(
                    &format!("{} {}", energy(t.energy_wh), pounds(t.cost_millipence)),
                    width,
                ),
                theme.title,
            )),
            Line::from(fit(
                &format!(
                    "baseline {}, saved {}",
                    energy(t.baseline_wh),
                    energy(t.savings_wh)
                ),
                width,
            )),
            Line::from(Span::styled(
                fit(
                    &format!("{missing} of {} half-hours missing", lamp.slots.len()),
                    width,
                ),
                if missing > 0 { theme.bad } else { theme.ok },
            )),
            Line::from(Span::styled(
                fit(&format!("Wh per half-hour, tallest {tallest} Wh"), width),
                theme.muted,
            )),
        ]),
        text,
    );
    let wh: Vec<u64> = lamp
        .slots
        .iter()
        .map(|s| u64::try_from(s.energy_wh).unwrap_or(0))
        .collect();
    frame.render_widget(
        ratatui::widgets::Sparkline::default()
            .data(wh)
            .style(theme.accent),
        bars,
    );
}

/// "today  4151.7 kWh  £1037.93  saved £259.48 over 100% of half-hours  all lamps
/// reporting", the least important parts left out first when narrow.
fn total_line(label: &str, totals: &proto::Totals, theme: &Theme, width: usize) -> Line<'static> {
    let t = totals.total.clone().unwrap_or_default();
    let missing = if t.lamps_missing > 0 {
        Span::styled(format!("{} lamps missing data", t.lamps_missing), theme.bad)
    } else {
        Span::styled("all lamps reporting".to_owned(), theme.ok)
    };
    let parts = vec![
        Part {
            span: Span::styled(format!("{label:>13}"), theme.muted),
            priority: 9,
        },
        Part {
            span: Span::styled(
                format!("{}  {}", energy(t.energy_wh), pounds(t.cost_millipence)),
                theme.title,
            ),
            priority: 9,
        },
        Part {
            span: Span::raw(format!(
                "saved {} over {} of half-hours",
                pounds(t.savings_millipence),
                covered(&t, totals.expected_slots)
            )),
            priority: 8,
        },
        Part {
            span: missing,
            priority: 5,
        },
    ];
    Line::from(by_priority(parts, Span::raw("  "), width))
}
