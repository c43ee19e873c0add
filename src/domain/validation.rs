//! The one error every input check produces: which field, and what is wrong with it.

use std::fmt;

/// Input that breaks a rule. `field` is the request field's name as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error seen from an enclosing message, e.g. `lat` inside `box` becomes `box.lat`.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            reason: self.reason,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What a client sent, quoted for an error message: whole when short, else its first 40
/// characters and its size, so an error never carries a large input back (a 64 KiB field
/// echoed whole makes the error itself too large for a client's metadata limit).
pub fn quoted(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        return format!("{text:?}");
    }
    let start: String = text.chars().take(SHOWN).collect();
    format!("{:?}… ({} bytes)", start, text.len())
}

/// A trimmed, non-empty text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    optional_text(field, trimmed, max)
}

/// A trimmed text of at most `max` characters, free of control characters; may be empty.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters (got {length})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A database id given by a client: positive.
pub fn required_id(field: &str, value: i64) -> Result<i64, ValidationError> {
    if value <= 0 {
        return Err(ValidationError::new(
            field,
            format!("must be a positive id (got {value})"),
        ));
    }
    Ok(value)
}

/// An id where 0 means "none".
pub fn optional_id(field: &str, value: i64) -> Result<Option<i64>, ValidationError> {
    match value {
        0 => Ok(None),
        v if v < 0 => Err(ValidationError::new(
            field,
            format!("must be a positive id or 0 for none (got {v})"),
        )),
        v => Ok(Some(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_input_is_quoted_by_its_start_and_size() {
        assert_eq!(quoted("Europe/Lndon"), "\"Europe/Lndon\"");
        let long = "x".repeat(65_536);
        let shown = quoted(&long);
        assert!(shown.len() < 70, "{shown}");
        assert!(shown.ends_with("… (65536 bytes)"), "{shown}");
    }

    #[test]
    fn required_text_trims_and_refuses_blank() {
        assert_eq!(required_text("name", "  Elm  ", 10), Ok("Elm".to_owned()));
        let error = required_text("name", "   ", 10).unwrap_err();
        assert_eq!(error.field, "name");
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        assert!(optional_text("name", "ééééé", 5).is_ok());
        assert!(optional_text("name", "éééééé", 5).is_err());
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(optional_text("name", "a\u{0}b", 5).is_err());
    }

    #[test]
    fn ids_must_be_positive() {
        assert!(required_id("id", 0).is_err());
        assert!(required_id("id", -3).is_err());
        assert_eq!(optional_id("id", 0), Ok(None));
        assert!(optional_id("id", -1).is_err());
    }

    #[test]
    fn within_prefixes_the_field() {
        let error = ValidationError::new("lat", "bad").within("box");
        assert_eq!(error.to_string(), "box.lat: bad");
    }
}
