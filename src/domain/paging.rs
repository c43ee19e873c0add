//! Page sizes and opaque page tokens for keyset-paged listings.

use super::ValidationError;
use super::geo::GeoBox;
use super::inventory::EntityStatus;

pub const DEFAULT_PAGE_SIZE: usize = 500;
pub const MAX_PAGE_SIZE: usize = 1000;

/// Records per page: unset means the default, anything outside 1..=MAX is refused, not clamped.
pub fn page_size(field: &str, requested: Option<i32>) -> Result<usize, ValidationError> {
    match requested {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n >= 1 && n as usize <= MAX_PAGE_SIZE => Ok(n as usize),
        Some(n) => Err(ValidationError::new(
            field,
            format!("must be between 1 and {MAX_PAGE_SIZE} (got {n})"),
        )),
    }
}

/// Where a listing resumes: after the record with this id. Tokens are opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub after_id: i64,
}

const TOKEN_PREFIX: &str = "after:";

impl Cursor {
    pub fn to_token(self) -> String {
        format!("{TOKEN_PREFIX}{}", self.after_id)
    }

    /// Empty starts from the beginning; anything not made by `to_token` is refused.
    pub fn from_token(field: &str, token: &str) -> Result<Self, ValidationError> {
        if token.is_empty() {
            return Ok(Self::default());
        }
        token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id >= 0)
            .map(|after_id| Self { after_id })
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    "is not a token this server issued; pass the next_page_token of a page, or empty",
                )
            })
    }
}

/// Which records a scan returns, in ascending id order, starting after a cursor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scan {
    pub after_id: i64,
    pub limit: usize,
    pub status: StatusFilter,
    /// Only records located inside this box (ignored for records without a location).
    pub area: Option<GeoBox>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Every status but DELETED.
    Live,
    /// Every status, DELETED included.
    All,
    Only(EntityStatus),
}

impl StatusFilter {
    pub fn admits(self, status: EntityStatus) -> bool {
        match self {
            StatusFilter::Live => status != EntityStatus::Deleted,
            StatusFilter::All => true,
            StatusFilter::Only(wanted) => status == wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_default_and_bounds() {
        assert_eq!(page_size("page_size", None), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size("page_size", Some(1)), Ok(1));
        assert_eq!(page_size("page_size", Some(1000)), Ok(1000));
        assert!(page_size("page_size", Some(0)).is_err());
        assert!(page_size("page_size", Some(-5)).is_err());
        assert!(page_size("page_size", Some(1001)).is_err());
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let cursor = Cursor { after_id: 42 };
        assert_eq!(Cursor::from_token("t", &cursor.to_token()), Ok(cursor));
        assert_eq!(Cursor::from_token("t", ""), Ok(Cursor::default()));
        assert!(Cursor::from_token("t", "after:x").is_err());
        assert!(Cursor::from_token("t", "42").is_err());
        assert!(Cursor::from_token("t", "after:-1").is_err());
    }
}
