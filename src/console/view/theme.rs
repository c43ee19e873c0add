//! Semantic styles (critical, major, ok, muted, ...) in three themes: full colour, the 16
//! ANSI colours, and monochrome (also what `NO_COLOR` gets), where every meaning is carried by
//! glyphs, letters and bold or reversed text rather than colour.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub name: &'static str,
    pub critical: Style,
    pub major: Style,
    pub minor: Style,
    pub warning: Style,
    pub ok: Style,
    pub muted: Style,
    pub accent: Style,
    pub selected: Style,
    pub marked: Style,
    pub bad: Style,
    pub title: Style,
}

impl Theme {
    pub fn by_name(name: &str) -> Result<Self, String> {
        match name {
            "default" => Ok(Self::colour()),
            "16" | "ansi" => Ok(Self::ansi()),
            "mono" | "monochrome" => Ok(Self::mono()),
            other => Err(format!("{other:?} is not a theme: use default, 16 or mono")),
        }
    }

    pub fn colour() -> Self {
        Self {
            name: "default",
            critical: Style::new()
                .fg(Color::Rgb(255, 85, 85))
                .add_modifier(Modifier::BOLD),
            major: Style::new().fg(Color::Rgb(255, 160, 60)),
            minor: Style::new().fg(Color::Rgb(230, 210, 90)),
            warning: Style::new().fg(Color::Rgb(120, 180, 255)),
            ok: Style::new().fg(Color::Rgb(110, 200, 120)),
            muted: Style::new().fg(Color::Rgb(130, 130, 140)),
            accent: Style::new().fg(Color::Rgb(120, 200, 230)),
            selected: Style::new()
                .bg(Color::Rgb(50, 60, 85))
                .add_modifier(Modifier::BOLD),
            marked: Style::new().fg(Color::Rgb(200, 140, 255)),
            bad: Style::new()
                .fg(Color::Rgb(255, 85, 85))
                .add_modifier(Modifier::BOLD),
            title: Style::new().add_modifier(Modifier::BOLD),
        }
    }

    pub fn ansi() -> Self {
        Self {
            name: "16",
            critical: Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
            major: Style::new().fg(Color::Red),
            minor: Style::new().fg(Color::Yellow),
            warning: Style::new().fg(Color::Cyan),
            ok: Style::new().fg(Color::Green),
            muted: Style::new().fg(Color::DarkGray),
            accent: Style::new().fg(Color::Cyan),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            marked: Style::new().fg(Color::Magenta),
            bad: Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
            title: Style::new().add_modifier(Modifier::BOLD),
        }
    }

    pub fn mono() -> Self {
        let plain = Style::new();
        Self {
            name: "mono",
            critical: plain.add_modifier(Modifier::BOLD),
            major: plain.add_modifier(Modifier::BOLD),
            minor: plain,
            warning: plain,
            ok: plain,
            muted: plain,
            accent: plain.add_modifier(Modifier::UNDERLINED),
            selected: plain.add_modifier(Modifier::REVERSED),
            marked: plain.add_modifier(Modifier::BOLD),
            bad: plain.add_modifier(Modifier::BOLD),
            title: plain.add_modifier(Modifier::BOLD),
        }
    }

    pub fn severity(&self, rank: u8) -> Style {
        match rank {
            4 => self.critical,
            3 => self.major,
            2 => self.minor,
            1 => self.warning,
            _ => self.muted,
        }
    }
}

/// Severity as glyph and letter, readable with no colour at all.
pub fn severity_glyph(rank: u8) -> &'static str {
    match rank {
        4 => "!!C",
        3 => " !M",
        2 => " .m",
        1 => " .w",
        _ => "  ?",
    }
}
