//! Finding the references inside a document or a record.
//!
//! A JSON document's references are found by [`scan`] (one pass over the
//! bytes) or, where it gives up, by [`walk`] (serde's own parser, which also
//! reports malformed input). A record carries its references already
//! ([`crate::backend::Record::refs`], collected while it was serialized).

use std::sync::Arc;

use uuid::Uuid;

use crate::class_name::share_class;
use crate::error::{Error, Result};
use crate::reference::Reference;

mod scan;
pub(crate) mod walk;

/// The references in a JSON document, a malformed one being a validation error.
pub(crate) fn references_in_json(bytes: &[u8]) -> Result<Vec<(Arc<str>, Uuid)>> {
    if let Some(found) = scan::scan(bytes) {
        return Ok(found);
    }
    walk::collect_references(&mut serde_json::Deserializer::from_slice(bytes))
        .map(intern_classes)
        .map_err(|e| Error::validation_with(format!("invalid document: {e}"), e))
}

/// `references` as (class, id) pairs, consecutive references of one class
/// sharing its text (the references of one document or record mostly name one
/// class).
pub(crate) fn intern_classes(references: Vec<Reference>) -> Vec<(Arc<str>, Uuid)> {
    let mut last: Option<Arc<str>> = None;
    references
        .into_iter()
        .map(|r| {
            let class = share_class(&mut last, r.class_name.as_bytes());
            (class.unwrap_or_else(|| Arc::from(&*r.class_name)), r.id)
        })
        .collect()
}
