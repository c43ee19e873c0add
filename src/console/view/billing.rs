//! The Billing tab: today and month to date live, or a chosen period; totals by zone as a
//! table and a bar chart, with savings against the unmetered baseline.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{BarChart, Block, Borders, Paragraph, Row, Table};

use super::theme::Theme;
use crate::cli::billing::{kwh, pounds};
use crate::console::state::{BillingPeriod, State};
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
        (Some(today), Some(month)) => vec![
            total_line("today", today, theme),
            total_line("month to date", month, theme),
        ],
        _ => vec![Line::from(Span::styled(
            "waiting for live totals…",
            theme.muted,
        ))],
    };
    frame.render_widget(
        Paragraph::new(summary_lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" energy and cost (p: period, :bill YYYY-MM) "),
        ),
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
    let [table_area, chart_area] =
        Layout::horizontal([Constraint::Percentage(68), Constraint::Percentage(32)]).areas(rest);
    let mut rows: Vec<Row<'_>> = totals.rows.iter().map(|r| row(r, theme)).collect();
    if let Some(total) = &totals.total {
        rows.push(row(total, theme).style(theme.title));
    }
    let header = Row::new(vec!["ZONE", "KWH", "COST", "LAMPS", "MISS", "SAVED"]).style(theme.title);
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(10),
        ],
    )
    .header(header)
    .block(Block::default().borders(Borders::ALL).title(format!(
        " {label}: {} to {}, {} half-hours due ",
        totals.from, totals.to, totals.expected_slots
    )));
    frame.render_widget(table, table_area);
    let bars: Vec<(String, u64)> = totals
        .rows
        .iter()
        .map(|r| {
            (
                r.key.chars().take(4).collect(),
                u64::try_from(r.energy_wh / 1000).unwrap_or(0),
            )
        })
        .collect();
    let data: Vec<(&str, u64)> = bars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    if let Some(lamp) = &state.billing_lamp {
        draw_lamp(frame, chart_area, lamp, theme);
        return;
    }
    frame.render_widget(
        BarChart::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" kWh by zone "),
            )
            .data(&data)
            .bar_width(4)
            .bar_gap(1)
            .bar_style(theme.accent)
            .value_style(theme.title),
        chart_area,
    );
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
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                format!("{} kWh {}", kwh(t.energy_wh), pounds(t.cost_millipence)),
                theme.title,
            )),
            Line::from(format!("baseline {} kWh", kwh(t.baseline_wh))),
            Line::from(Span::styled(
                format!("{missing} of {} half-hours missing", lamp.slots.len()),
                if missing > 0 { theme.bad } else { theme.ok },
            )),
            Line::from(Span::styled("Wh per half-hour:", theme.muted)),
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

fn total_line(label: &str, totals: &proto::Totals, theme: &Theme) -> Line<'static> {
    let t = totals.total.clone().unwrap_or_default();
    let missing = if t.lamps_missing > 0 {
        Span::styled(
            format!("  {} lamps missing data", t.lamps_missing),
            theme.bad,
        )
    } else {
        Span::styled("  all lamps reporting".to_owned(), theme.ok)
    };
    Line::from(vec![
        Span::styled(format!("{label:>14}  "), theme.muted),
        Span::styled(
            format!("{} kWh  {}", kwh(t.energy_wh), pounds(t.cost_millipence)),
            theme.title,
        ),
        Span::raw(format!(
            "  saved {} ({} kWh) vs unmetered",
            pounds(t.savings_millipence),
            kwh(t.savings_wh)
        )),
        missing,
    ])
}

fn row<'a>(r: &proto::TotalsRow, theme: &Theme) -> Row<'a> {
    let missing_style = if r.lamps_missing > 0 {
        theme.bad
    } else {
        theme.muted
    };
    Row::new(vec![
        ratatui::widgets::Cell::from(r.key.clone()),
        ratatui::widgets::Cell::from(kwh(r.energy_wh)),
        ratatui::widgets::Cell::from(pounds(r.cost_millipence)),
        ratatui::widgets::Cell::from(r.lamps.to_string()),
        ratatui::widgets::Cell::from(r.lamps_missing.to_string()).style(missing_style),
        ratatui::widgets::Cell::from(pounds(r.savings_millipence)),
    ])
}
