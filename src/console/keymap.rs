//! Keys to actions: the closed `Action` set, the default keymap (`assets/keymap.toml`), a
//! user file overriding it, conflicts refused, and the help text generated from the same table.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// Everything a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Quit,
    Help,
    Command,
    NextTab,
    PreviousTab,
    FaultsTab,
    LampsTab,
    BillingTab,
    Down,
    Up,
    Top,
    Bottom,
    PageDown,
    PageUp,
    HalfPageDown,
    HalfPageUp,
    Open,
    Back,
    Filter,
    Freeze,
    SortNext,
    SortReverse,
    Mark,
    ClearMarks,
    Acknowledge,
    Assign,
    Resolve,
    Note,
    PreviousDay,
    NextDay,
    FindLamp,
    BillingPeriod,
    Zoom,
    Expand,
    Fold,
    Group,
    NextInQueue,
    SortByAge,
    SortByZone,
    Reconnect,
    Copy,
    Claim,
}

/// Each action's name in the keymap file and what it does, in help order.
pub const ACTIONS: &[(Action, &str, &str)] = &[
    (Action::Quit, "quit", "quit"),
    (Action::Help, "help", "this help"),
    (
        Action::Command,
        "command",
        "command line: fault, ack, resolve, assign, note, lamp, zone, bill, tz, login, q",
    ),
    (Action::NextTab, "next_tab", "next tab"),
    (Action::PreviousTab, "previous_tab", "previous tab"),
    (Action::FaultsTab, "faults_tab", "Faults tab"),
    (Action::LampsTab, "lamps_tab", "Lamps tab"),
    (Action::BillingTab, "billing_tab", "Billing tab"),
    (Action::Down, "down", "next row (in the detail: scroll)"),
    (Action::Up, "up", "previous row (in the detail: scroll)"),
    (Action::Top, "top", "first row"),
    (Action::Bottom, "bottom", "last row"),
    (Action::PageDown, "page_down", "page down"),
    (Action::PageUp, "page_up", "page up"),
    (Action::HalfPageDown, "half_page_down", "half a page down"),
    (Action::HalfPageUp, "half_page_up", "half a page up"),
    (Action::Open, "open", "open the selected fault's detail"),
    (
        Action::Back,
        "back",
        "close the detail, else clear the marks",
    ),
    (
        Action::Filter,
        "filter",
        "filter: sev>=major zone=west state=open,acked type=burner lamp=12 assignee=crew words",
    ),
    (Action::Freeze, "freeze", "freeze / release the feed"),
    (Action::SortNext, "sort_next", "sort by the next column"),
    (Action::SortReverse, "sort_reverse", "reverse the sort"),
    (Action::Mark, "mark", "mark or unmark for a bulk action"),
    (Action::ClearMarks, "clear_marks", "clear the marks"),
    (
        Action::Acknowledge,
        "acknowledge",
        "acknowledge the marked faults shown, else the selected one",
    ),
    (Action::Assign, "assign", "assign to a crew or work order"),
    (
        Action::Resolve,
        "resolve",
        "resolve as repaired (asks first)",
    ),
    (Action::Note, "note", "add a note"),
    (
        Action::PreviousDay,
        "previous_day",
        "Daily Faults: the day before",
    ),
    (Action::NextDay, "next_day", "Daily Faults: the day after"),
    (
        Action::FindLamp,
        "find_lamp",
        "find a lamp: id, telecell uuid or zone",
    ),
    (
        Action::BillingPeriod,
        "billing_period",
        "billing: month to date, today, last month",
    ),
    (Action::Zoom, "zoom", "board alone / with Daily Faults"),
    (
        Action::Expand,
        "expand",
        "show a roll-up's lamp faults under it",
    ),
    (
        Action::Fold,
        "fold",
        "fold a roll-up's lamp faults into its row",
    ),
    (
        Action::Group,
        "group",
        "group the board by circuit, by zone, or not",
    ),
    (
        Action::NextInQueue,
        "next_in_queue",
        "next fault waiting: unacknowledged, shown, most severe, largest outage, oldest first",
    ),
    (
        Action::SortByAge,
        "sort_by_age",
        "sort by age (again: reverse)",
    ),
    (
        Action::SortByZone,
        "sort_by_zone",
        "sort by zone (again: reverse)",
    ),
    (
        Action::Reconnect,
        "reconnect",
        "reconnect now instead of waiting out the backoff",
    ),
    (
        Action::Claim,
        "claim",
        "claim the selected fault (others see you are on it); again: release",
    ),
    (
        Action::Copy,
        "copy",
        "copy the selected fault (id, lamp, zone, type, state, first seen) to the clipboard",
    ),
];

/// A key press, as written in the keymap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub code: KeyName,
    pub ctrl: bool,
    pub alt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyName {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

impl Key {
    /// The key of a press event; releases and repeats-as-release are not keys.
    pub fn from_event(event: &KeyEvent) -> Option<Self> {
        if event.kind == KeyEventKind::Release {
            return None;
        }
        let code = match event.code {
            KeyCode::Char(c) => KeyName::Char(c),
            KeyCode::Enter => KeyName::Enter,
            KeyCode::Esc => KeyName::Esc,
            KeyCode::Tab => KeyName::Tab,
            KeyCode::BackTab => KeyName::BackTab,
            KeyCode::Backspace => KeyName::Backspace,
            KeyCode::Up => KeyName::Up,
            KeyCode::Down => KeyName::Down,
            KeyCode::Left => KeyName::Left,
            KeyCode::Right => KeyName::Right,
            KeyCode::Home => KeyName::Home,
            KeyCode::End => KeyName::End,
            KeyCode::PageUp => KeyName::PageUp,
            KeyCode::PageDown => KeyName::PageDown,
            KeyCode::F(n) => KeyName::F(n),
            _ => return None,
        };
        Some(Self {
            code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
            alt: event.modifiers.contains(KeyModifiers::ALT),
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyName::Enter,
            "esc" => KeyName::Esc,
            "tab" => KeyName::Tab,
            "backtab" => KeyName::BackTab,
            "backspace" => KeyName::Backspace,
            "space" => KeyName::Char(' '),
            "up" => KeyName::Up,
            "down" => KeyName::Down,
            "left" => KeyName::Left,
            "right" => KeyName::Right,
            "home" => KeyName::Home,
            "end" => KeyName::End,
            "pageup" => KeyName::PageUp,
            "pagedown" => KeyName::PageDown,
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyName::F(f[1..].parse().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyName::Char(c.chars().next().unwrap_or(' ')),
            _ => {
                return Err(format!(
                    "{text:?} is not a key (e.g. \"a\", \"ctrl-c\", \"enter\")"
                ));
            }
        };
        Ok(Self { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyName::Char(' ') => f.write_str("space"),
            KeyName::Char(c) => write!(f, "{c}"),
            KeyName::Enter => f.write_str("enter"),
            KeyName::Esc => f.write_str("esc"),
            KeyName::Tab => f.write_str("tab"),
            KeyName::BackTab => f.write_str("backtab"),
            KeyName::Backspace => f.write_str("backspace"),
            KeyName::Up => f.write_str("up"),
            KeyName::Down => f.write_str("down"),
            KeyName::Left => f.write_str("left"),
            KeyName::Right => f.write_str("right"),
            KeyName::Home => f.write_str("home"),
            KeyName::End => f.write_str("end"),
            KeyName::PageUp => f.write_str("pageup"),
            KeyName::PageDown => f.write_str("pagedown"),
            KeyName::F(n) => write!(f, "f{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("{source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("{source_name}: key {key} is bound to both {first} and {second}; bind it to one")]
    Conflict {
        source_name: String,
        key: String,
        first: &'static str,
        second: &'static str,
    },
}

#[derive(Debug, serde::Deserialize)]
struct KeymapFile {
    #[serde(default)]
    keys: BTreeMap<String, Vec<String>>,
}

/// Which action each key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Action, Vec<Key>>,
    by_key: BTreeMap<Key, Action>,
}

impl Keymap {
    /// The default keymap with `user` (a TOML text, from `source_name`) laid over it.
    pub fn load(user: Option<(&str, &str)>) -> Result<Self, KeymapError> {
        let mut bindings = parse(DEFAULT_KEYMAP, "assets/keymap.toml")?;
        if let Some((source_name, text)) = user {
            bindings.extend(parse(text, source_name)?);
            return Self::from_bindings(bindings, source_name);
        }
        Self::from_bindings(bindings, "assets/keymap.toml")
    }

    /// The default keymap with the user's file from `path`, if there is one.
    pub fn load_file(path: &Path) -> Result<Self, KeymapError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::load(Some((&path.display().to_string(), &text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::load(None),
            Err(e) => Err(KeymapError::Invalid {
                source_name: path.display().to_string(),
                reason: format!("cannot read it: {e}"),
            }),
        }
    }

    fn from_bindings(
        bindings: BTreeMap<Action, Vec<Key>>,
        source_name: &str,
    ) -> Result<Self, KeymapError> {
        let mut by_key: BTreeMap<Key, Action> = BTreeMap::new();
        for (action, keys) in &bindings {
            for key in keys {
                if let Some(other) = by_key.insert(*key, *action)
                    && other != *action
                {
                    return Err(KeymapError::Conflict {
                        source_name: source_name.to_owned(),
                        key: key.to_string(),
                        first: name_of(other),
                        second: name_of(*action),
                    });
                }
            }
        }
        Ok(Self { bindings, by_key })
    }

    pub fn action(&self, key: Key) -> Option<Action> {
        self.by_key.get(&key).copied()
    }

    /// The keys of an action as shown to people ("j down"; spaces, since "/" is a key).
    pub fn keys_of(&self, action: Action) -> String {
        self.bindings
            .get(&action)
            .map(|keys| {
                keys.iter()
                    .map(Key::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    /// The first key of an action, for the one-line key hints.
    pub fn first_key(&self, action: Action) -> String {
        self.bindings
            .get(&action)
            .and_then(|keys| keys.first())
            .map(Key::to_string)
            .unwrap_or_default()
    }

    /// Help lines: keys, then what they do, for every action.
    pub fn help(&self) -> Vec<(String, &'static str)> {
        ACTIONS
            .iter()
            .map(|(action, _, what)| (self.keys_of(*action), *what))
            .collect()
    }
}

fn name_of(action: Action) -> &'static str {
    ACTIONS
        .iter()
        .find(|(a, _, _)| *a == action)
        .map_or("?", |(_, name, _)| name)
}

fn parse(text: &str, source_name: &str) -> Result<BTreeMap<Action, Vec<Key>>, KeymapError> {
    let invalid = |reason: String| KeymapError::Invalid {
        source_name: source_name.to_owned(),
        reason,
    };
    let file: KeymapFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut bindings = BTreeMap::new();
    for (name, keys) in file.keys {
        let action = ACTIONS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(a, _, _)| *a)
            .ok_or_else(|| invalid(format!("{name:?} is not an action; see `?` in the console")))?;
        let keys = keys
            .iter()
            .map(|k| Key::parse(k).map_err(|e| invalid(format!("{name}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        bindings.insert(action, keys);
    }
    Ok(bindings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn the_default_keymap_binds_every_action_without_conflict() {
        let keymap = Keymap::load(None).unwrap();
        for (action, name, _) in ACTIONS {
            assert!(!keymap.keys_of(*action).is_empty(), "{name} has no key");
        }
        let key = Key::from_event(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)).unwrap();
        assert_eq!(keymap.action(key), Some(Action::Quit));
        let key = Key::from_event(&press(KeyCode::Char('j'), KeyModifiers::NONE)).unwrap();
        assert_eq!(keymap.action(key), Some(Action::Down));
        // Half a page, never anything destructive, on ctrl-d.
        let key = Key::from_event(&press(KeyCode::Char('d'), KeyModifiers::CONTROL)).unwrap();
        assert_eq!(keymap.action(key), Some(Action::HalfPageDown));
    }

    #[test]
    fn a_user_file_overrides_and_conflicts_are_refused() {
        let keymap = Keymap::load(Some(("mine.toml", "[keys]\nacknowledge = [\"K\"]\n"))).unwrap();
        assert_eq!(keymap.keys_of(Action::Acknowledge), "K");
        let conflict = Keymap::load(Some(("mine.toml", "[keys]\nacknowledge = [\"j\"]\n")))
            .unwrap_err()
            .to_string();
        assert!(
            conflict.contains("mine.toml") && conflict.contains("down"),
            "{conflict}"
        );
        assert!(conflict.contains("acknowledge"), "{conflict}");
        let unknown = Keymap::load(Some(("mine.toml", "[keys]\nexplode = [\"x\"]\n"))).unwrap_err();
        assert!(unknown.to_string().contains("explode"));
        let bad_key =
            Keymap::load(Some(("mine.toml", "[keys]\nquit = [\"hyper-q\"]\n"))).unwrap_err();
        assert!(bad_key.to_string().contains("hyper-q"));
    }

    #[test]
    fn releases_are_not_presses_and_keys_print_as_written() {
        let mut release = press(KeyCode::Char('a'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(Key::from_event(&release), None);
        for text in ["ctrl-c", "space", "G", "f5", "alt-x", "backtab"] {
            assert_eq!(Key::parse(text).unwrap().to_string(), text);
        }
    }
}
