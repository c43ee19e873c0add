//! Text that fits its space: cut with an ellipsis, never silently; a status bar that drops
//! its least important parts first; a line of input that scrolls to keep the cursor in view.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;

/// The widths a table `width` columns wide (inside its borders) gives columns with these
/// constraints and one space between them, so each cell can be cut to fit with an ellipsis
/// rather than cut bare by the table.
pub fn column_widths(constraints: &[Constraint], width: u16) -> Vec<usize> {
    Layout::horizontal(constraints.to_vec())
        .spacing(1)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| usize::from(r.width))
        .collect()
}

/// `text` in at most `width` columns: whole if it fits, else cut with "…" at the end.
pub fn fit(text: &str, width: usize) -> String {
    let length = text.chars().count();
    if length <= width {
        return text.to_owned();
    }
    match width {
        0 => String::new(),
        _ => {
            let mut cut: String = text.chars().take(width - 1).collect();
            cut.push('…');
            cut
        }
    }
}

/// `fit` for a text already owned: no copy when it fits (the common case, row after row).
pub fn fit_owned(text: String, width: usize) -> String {
    if text.len() <= width || text.chars().count() <= width {
        text
    } else {
        fit(&text, width)
    }
}

/// The end of `text` that fits `width` columns, with "…" in front when its start is cut: a
/// line being typed keeps its cursor in view.
pub fn tail(text: &str, width: usize) -> String {
    let length = text.chars().count();
    if length <= width {
        return text.to_owned();
    }
    match width {
        0 => String::new(),
        _ => {
            let kept: String = text.chars().skip(length - (width - 1)).collect();
            format!("…{kept}")
        }
    }
}

/// A part of a status line, with how much it matters (higher stays longer).
pub struct Part<'a> {
    pub span: Span<'a>,
    pub priority: u8,
}

/// The parts, in their order, that fit `width` with `separator` between them: the least
/// important are left out first, and the last one kept is cut with "…" if it alone is too
/// long.
pub fn by_priority<'a>(parts: Vec<Part<'a>>, separator: Span<'a>, width: usize) -> Vec<Span<'a>> {
    let sep = separator.content.chars().count();
    let mut kept: Vec<bool> = vec![true; parts.len()];
    let total = |kept: &[bool]| -> usize {
        let shown: Vec<usize> = parts
            .iter()
            .zip(kept)
            .filter(|(_, k)| **k)
            .map(|(p, _)| p.span.content.chars().count())
            .collect();
        shown.iter().sum::<usize>() + sep * shown.len().saturating_sub(1)
    };
    while total(&kept) > width {
        let Some((drop, _)) = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| kept[*i])
            .min_by_key(|(i, p)| (p.priority, std::cmp::Reverse(*i)))
        else {
            break;
        };
        if kept.iter().filter(|k| **k).count() == 1 {
            break;
        }
        kept[drop] = false;
    }
    let mut spans = Vec::new();
    let mut used = 0;
    for (part, _) in parts.into_iter().zip(&kept).filter(|(_, k)| **k) {
        if !spans.is_empty() {
            spans.push(separator.clone());
            used += sep;
        }
        let room = width.saturating_sub(used);
        let text = fit(&part.span.content, room);
        used += text.chars().count();
        spans.push(Span::styled(text, part.span.style));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_with_an_ellipsis_and_input_keeps_its_end() {
        assert_eq!(fit("West End", 10), "West End");
        assert_eq!(fit("Westminster Abbey", 8), "Westmin…");
        assert_eq!(fit("ab", 0), "");
        assert_eq!(tail("assign to crew-north", 8), "…w-north");
        assert_eq!(tail("short", 8), "short");
    }

    #[test]
    fn the_least_important_parts_go_first() {
        let part = |text: &'static str, priority| Part {
            span: Span::raw(text),
            priority,
        };
        let parts = || {
            vec![
                part("21:30 Europe/London", 5),
                part("faults: live", 9),
                part("12 ev/min", 1),
                part("ana (user)", 9),
                part("http://127.0.0.1:50051", 2),
            ]
        };
        let text = |spans: Vec<Span<'_>>| {
            spans
                .iter()
                .map(|s| s.content.to_string())
                .collect::<String>()
        };
        assert_eq!(
            text(by_priority(parts(), Span::raw(" | "), 200)),
            "21:30 Europe/London | faults: live | 12 ev/min | ana (user) | http://127.0.0.1:50051"
        );
        assert_eq!(
            text(by_priority(parts(), Span::raw(" | "), 50)),
            "21:30 Europe/London | faults: live | ana (user)"
        );
        assert_eq!(
            text(by_priority(parts(), Span::raw(" | "), 27)),
            "faults: live | ana (user)"
        );
    }
}
