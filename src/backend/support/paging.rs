//! The one list pager: newest first (`created_at` descending, then id
//! descending), then `offset` and `limit`.

use std::cmp::Ordering;

use crate::record::{ListEntry, ListQuery};

/// The order of a listing: newest first, the larger id first on a tie.
pub(crate) fn newest_first(a: &ListEntry, b: &ListEntry) -> Ordering {
    b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id))
}

/// A query's page bounds, saturated to what the storage takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    /// How many to skip.
    pub(crate) offset: u64,
    /// How many to return at most.
    pub(crate) limit: u64,
}

impl Page {
    /// The bounds of `query`.
    pub(crate) fn of(query: &ListQuery) -> Page {
        Page {
            offset: query.offset,
            limit: query.limit,
        }
    }

    /// Whether the page holds nothing whatever is stored (`limit` 0).
    pub(crate) fn is_empty(self) -> bool {
        self.limit == 0
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// `LIMIT` for SQL (a signed 64-bit integer there).
    pub(crate) fn sql_limit(self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX)
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// `OFFSET` for SQL.
    pub(crate) fn sql_offset(self) -> i64 {
        i64::try_from(self.offset).unwrap_or(i64::MAX)
    }

    /// Sorts `entries` newest first and keeps this page of them.
    pub(crate) fn of_entries(self, mut entries: Vec<ListEntry>) -> Vec<ListEntry> {
        if self.is_empty() {
            return Vec::new();
        }
        entries.sort_by(newest_first);
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        entries.into_iter().skip(offset).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use uuid::Uuid;

    fn entry(seconds: i64, id: u128) -> ListEntry {
        let at = DateTime::from_timestamp(seconds, 0).unwrap_or_default();
        ListEntry {
            id: Uuid::from_u128(id),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn newest_first_then_larger_id_then_paged() {
        let entries = vec![
            entry(1, 9),
            entry(3, 1),
            entry(2, 1),
            entry(2, 5),
            entry(0, 0),
        ];
        let page = |offset, limit| {
            Page { offset, limit }
                .of_entries(entries.clone())
                .iter()
                .map(|e| (e.created_at.timestamp(), e.id.as_u128()))
                .collect::<Vec<_>>()
        };
        assert_eq!(page(0, 100), [(3, 1), (2, 5), (2, 1), (1, 9), (0, 0)]);
        assert_eq!(page(1, 2), [(2, 5), (2, 1)]);
        assert!(page(5, 10).is_empty());
        assert!(page(0, 0).is_empty());
        assert!(page(u64::MAX, u64::MAX).is_empty());
        let huge = Page {
            offset: u64::MAX,
            limit: u64::MAX,
        };
        assert_eq!((huge.sql_offset(), huge.sql_limit()), (i64::MAX, i64::MAX));
    }
}
