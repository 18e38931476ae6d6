//! The one corrupted-record error: a stored record that cannot be read
//! back is an [`Error::Validation`] naming its class and id, whatever the
//! backend and whatever the path that read it.

use std::fmt::Display;

use uuid::Uuid;

use crate::error::{BoxError, Error};

/// `stored record {class_name} {id} is corrupted: {what}` (the id may be
/// the very thing that is corrupted: then `None`).
pub(crate) fn corrupted(class_name: &str, id: Option<Uuid>, what: impl Display) -> Error {
    Error::validation(message(class_name, id, what))
}

/// [`corrupted`], with the error that showed it.
pub(crate) fn corrupted_with(
    class_name: &str,
    id: Option<Uuid>,
    what: impl Display,
    source: impl Into<BoxError>,
) -> Error {
    Error::validation_with(message(class_name, id, what), source)
}

fn message(class_name: &str, id: Option<Uuid>, what: impl Display) -> String {
    match id {
        Some(id) => format!("stored record {class_name} {id} is corrupted: {what}"),
        None => format!("a stored record of {class_name} is corrupted: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_class_and_id() {
        let err = corrupted("Item", Some(Uuid::nil()), "bad created_at");
        assert!(err.is_validation());
        assert_eq!(
            err.to_string(),
            "stored record Item 00000000-0000-0000-0000-000000000000 is corrupted: bad created_at"
        );
        let err = corrupted_with("Item", None, "its id is not a UUID", Error::validation("x"));
        assert!(err.is_validation());
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            err.to_string(),
            "a stored record of Item is corrupted: its id is not a UUID"
        );
    }
}
