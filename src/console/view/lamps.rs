//! The Lamps tab: the found lamp's live status (on/off, dim, V, A, W, PF, energy, burn hours,
//! last heard, open faults) and a map of its zone with faulty lamps marked.

use chrono::DateTime;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Points};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::clock::age;
use super::theme::Theme;
use crate::console::state::State;
use crate::proto;

pub fn health_text(status: &proto::LampStatus) -> &'static str {
    match proto::LampHealth::try_from(status.health) {
        Ok(proto::LampHealth::Ok) => "OK",
        Ok(proto::LampHealth::Fault) => "FAULT",
        Ok(proto::LampHealth::Offline) => "OFFLINE",
        _ => "UNKNOWN",
    }
}

/// One line of readings, for the lamp pane and the fault detail.
pub fn status_line(status: &proto::LampStatus, state: &State) -> String {
    format!(
        "{} {} dim {}/{}% {:.0} V {:.2} A {:.0} W PF {:.2} heard {} ago",
        health_text(status),
        if status.lamp_on { "ON" } else { "off" },
        status.dim_actual_pct,
        status.dim_target_pct,
        status.voltage_v,
        status.current_a,
        status.power_w,
        status.power_factor,
        age(status.last_heard.as_ref(), state.now)
    )
}

pub fn draw(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let [pane, map] = Layout::horizontal([Constraint::Length(44), Constraint::Min(20)]).areas(area);
    draw_pane(frame, pane, state, theme);
    draw_map(frame, map, state, theme);
}

fn draw_pane(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let block = Block::default().borders(Borders::ALL).title(format!(
        " lamp{} ",
        super::data_age(state.lamp_at, state.now)
    ));
    let Some(lamp) = &state.lamps.lamp else {
        let hint = if state.lamps.query.is_empty() {
            // Suggest a zone this estate has.
            let mut zones: Vec<&str> = state.zones.values().map(String::as_str).collect();
            zones.sort_unstable();
            let zone = zones
                .first()
                .map_or(String::new(), |z| format!(", :zone {z}"));
            format!("press l (or :lamp 12{zone}) to find a lamp by id, telecell uuid or zone")
        } else if let Some(failed) = &state.lamps.failed {
            format!("{failed}. l or :lamp 12 looks again.")
        } else if state.lamps.zone_id > 0 {
            let faulty = state
                .lamps
                .zone_lamps
                .values()
                .filter(|s| s.open_faults > 0)
                .count();
            format!(
                "zone {}: {} lamps on the map, {faulty} with open faults (x). l or :lamp 12 opens a lamp.",
                state.zone_name(state.lamps.zone_id),
                state.lamps.zone_points.len()
            )
        } else {
            format!("looking for {:?}…", state.lamps.query)
        };
        frame.render_widget(
            Paragraph::new(hint)
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    };
    let lamp_type = lamp.lamp_type.as_ref();
    let mut lines = vec![
        Line::from(Span::styled(
            format!("lamp {} {}", lamp.id, lamp.reference),
            theme.title,
        )),
        Line::from(format!(
            "{} {} W  zone {}",
            lamp_type.map_or("", |t| t.name.as_str()),
            lamp_type.map_or(0, |t| t.wattage_w),
            state.zone_name(lamp.zone_id)
        )),
    ];
    match &state.lamps.status {
        Some(s) => {
            let health_style = match health_text(s) {
                "OK" => theme.ok,
                "UNKNOWN" => theme.muted,
                _ => theme.bad,
            };
            let heard = s
                .last_heard
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.with_timezone(&state.tz).format("%H:%M:%S").to_string())
                .unwrap_or_else(|| "never".to_owned());
            let rows = [
                ("health", health_text(s).to_owned(), health_style),
                (
                    "open faults",
                    s.open_faults.to_string(),
                    if s.open_faults > 0 {
                        theme.bad
                    } else {
                        theme.ok
                    },
                ),
                (
                    "lamp",
                    if s.lamp_on {
                        "ON".to_owned()
                    } else {
                        "off".to_owned()
                    },
                    Style::new(),
                ),
                (
                    "dim actual/target",
                    format!("{}% / {}%", s.dim_actual_pct, s.dim_target_pct),
                    Style::new(),
                ),
                ("supply", format!("{:.1} V", s.voltage_v), Style::new()),
                ("current", format!("{:.3} A", s.current_a), Style::new()),
                ("power", format!("{:.1} W", s.power_w), Style::new()),
                (
                    "power factor",
                    format!("{:.2}", s.power_factor),
                    Style::new(),
                ),
                (
                    "energy",
                    format!("{:.1} kWh", s.energy_wh as f64 / 1000.0),
                    Style::new(),
                ),
                ("burn hours", s.burn_hours.to_string(), Style::new()),
                (
                    "temperature",
                    format!("{:.0} °C", s.temperature_c),
                    Style::new(),
                ),
                (
                    "link quality",
                    format!("{}%", s.link_quality_pct),
                    Style::new(),
                ),
                (
                    "last heard",
                    format!("{heard} ({} ago)", age(s.last_heard.as_ref(), state.now)),
                    Style::new(),
                ),
            ];
            for (label, value, style) in rows {
                lines.push(Line::from(vec![
                    Span::styled(format!("{label:>18}  "), theme.muted),
                    Span::styled(value, style),
                ]));
            }
        }
        None => lines.push(Line::from(Span::styled(
            "waiting for its status…",
            theme.muted,
        ))),
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_map(frame: &mut Frame<'_>, area: Rect, state: &State, theme: &Theme) {
    let points = &state.lamps.zone_points;
    let title = format!(
        " {}: {} lamps, x = fault or offline ",
        state.zone_name(state.lamps.zone_id),
        points.len()
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(super::fit::fit(
            &title,
            usize::from(area.width.saturating_sub(2)),
        ));
    if points.is_empty() {
        frame.render_widget(Paragraph::new("no zone to show yet").block(block), area);
        return;
    }
    let faulty = |id: &i64| {
        state
            .lamps
            .zone_lamps
            .get(id)
            .is_some_and(|s| matches!(health_text(s), "FAULT" | "OFFLINE"))
    };
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
        (90.0f64, -90.0f64, 180.0f64, -180.0f64);
    for (lat, lon) in points.values() {
        min_lat = min_lat.min(*lat);
        max_lat = max_lat.max(*lat);
        min_lon = min_lon.min(*lon);
        max_lon = max_lon.max(*lon);
    }
    let healthy: Vec<(f64, f64)> = points
        .iter()
        .filter(|(id, _)| !faulty(id))
        .map(|(_, (lat, lon))| (*lon, *lat))
        .collect();
    let bad: Vec<(f64, f64)> = points
        .iter()
        .filter(|(id, _)| faulty(id))
        .map(|(_, (lat, lon))| (*lon, *lat))
        .collect();
    let selected: Vec<(f64, f64)> = state
        .lamps
        .lamp
        .as_ref()
        .and_then(|l| points.get(&l.id))
        .map(|(lat, lon)| vec![(*lon, *lat)])
        .unwrap_or_default();
    let ok_colour = theme.ok.fg.unwrap_or(ratatui::style::Color::Reset);
    let bad_colour = theme.bad.fg.unwrap_or(ratatui::style::Color::Reset);
    let accent = theme.accent.fg.unwrap_or(ratatui::style::Color::Reset);
    // Braille where colour tells faulty lamps apart; plain characters where it cannot.
    let mono = theme.bad.fg.is_none();
    let canvas = Canvas::default()
        .block(block)
        .marker(if mono { Marker::Dot } else { Marker::Braille })
        .x_bounds([min_lon - 0.0005, max_lon + 0.0005])
        .y_bounds([min_lat - 0.0005, max_lat + 0.0005])
        .paint(move |ctx| {
            ctx.draw(&Points {
                coords: &healthy,
                color: ok_colour,
            });
            ctx.layer();
            for (x, y) in &bad {
                ctx.print(*x, *y, Span::styled("x", Style::new().fg(bad_colour)));
            }
            for (x, y) in &selected {
                ctx.print(*x, *y, Span::styled("@", Style::new().fg(accent)));
            }
        });
    frame.render_widget(canvas, area);
}
