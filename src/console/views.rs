//! Saved board views (`:view save NAME`, `:view NAME`): the filter, sort and grouping an
//! operator keeps coming back to, kept by name in `views.toml` in the config directory.

use std::collections::BTreeMap;
use std::path::Path;

use super::state::{Grouping, SORT_KEYS, State};

/// What a view restores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedView {
    pub filter: String,
    /// A sort key's label: severity, age, lamp, zone, type, state, count.
    pub sort: String,
    pub descending: bool,
    /// off, circuit or zone.
    pub grouping: String,
}

impl SavedView {
    pub fn of(state: &State) -> Self {
        Self {
            filter: state.filter_text.clone(),
            sort: state.sort.label().to_owned(),
            descending: state.descending,
            grouping: state.grouping.label().to_owned(),
        }
    }

    /// Puts the view in force; an unknown sort or grouping (a hand-edited file) is refused
    /// whole, naming it.
    pub fn apply_to(&self, state: &mut State) -> Result<(), String> {
        let sort = SORT_KEYS
            .iter()
            .find(|k| k.label() == self.sort)
            .ok_or_else(|| format!("sort {:?} is not a column", self.sort))?;
        let grouping = [Grouping::Off, Grouping::Circuit, Grouping::Zone]
            .into_iter()
            .find(|g| g.label() == self.grouping)
            .ok_or_else(|| format!("grouping {:?} is not off, circuit or zone", self.grouping))?;
        let filter = super::filter::Filter::parse(&self.filter)
            .map_err(|e| format!("its filter no longer parses: {e}"))?;
        state.filter = filter;
        state.filter_text = self.filter.clone();
        state.sort = *sort;
        state.descending = self.descending;
        state.grouping = grouping;
        state.view_dirty = true;
        Ok(())
    }
}

/// A view's name: letters, digits, `-` and `_`, at most 32.
pub fn check_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a view name: letters, digits, - and _, at most 32"
        ))
    }
}

fn read_all(path: &Path) -> Result<BTreeMap<String, SavedView>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub fn load(path: &Path, name: &str) -> Result<SavedView, String> {
    let mut views = read_all(path)?;
    views.remove(name).ok_or_else(|| {
        let known: Vec<String> = views.into_keys().collect();
        if known.is_empty() {
            format!("no view {name:?}: save one with :view save NAME")
        } else {
            format!("no view {name:?}; saved: {}", known.join(", "))
        }
    })
}

/// Saves (or replaces) a view, writing the file whole through a temporary one so a crash
/// never leaves it half written.
pub fn save(path: &Path, name: &str, view: SavedView) -> Result<(), String> {
    let mut views = read_all(path)?;
    views.insert(name.to_owned(), view);
    let text = toml::to_string(&views).map_err(|e| format!("cannot write the views: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let temporary = path.with_extension("toml.new");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_view_comes_back_and_a_bad_one_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/views.toml");
        let view = SavedView {
            filter: "sev>=major zone=west".into(),
            sort: "age".into(),
            descending: false,
            grouping: "zone".into(),
        };
        save(&path, "west-majors", view.clone()).unwrap();
        assert_eq!(load(&path, "west-majors").unwrap(), view);
        let missing = load(&path, "east").unwrap_err();
        assert!(missing.contains("west-majors"), "{missing}");
        assert!(check_name("night shift").is_err());
        assert!(check_name("night_shift-2").is_ok());

        let mut state = State::new(
            "http://test".into(),
            "ana".into(),
            chrono_tz::Europe::London,
            chrono::Utc::now(),
        );
        view.apply_to(&mut state).unwrap();
        assert_eq!(state.filter_text, "sev>=major zone=west");
        assert_eq!(state.grouping, Grouping::Zone);
        let broken = SavedView {
            sort: "colour".into(),
            ..view
        };
        assert!(broken.apply_to(&mut state).unwrap_err().contains("colour"));
    }
}
