//! [`Reference`], the `{"class_name", "id"}` stand-in a document carries.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a document carries in place of an external value: exactly
/// `{"class_name": "...", "id": "<uuid>"}`.
///
/// Deserialization is strict: both fields are required and no other field is
/// accepted, so a value that merely resembles a reference is never mistaken
/// for one.
///
/// # Examples
///
/// ```
/// let r = toast::Reference::new("Vec<Item>", uuid::Uuid::nil());
/// assert_eq!(
///     serde_json::to_string(&r).unwrap(),
///     r#"{"class_name":"Vec<Item>","id":"00000000-0000-0000-0000-000000000000"}"#
/// );
/// assert!(serde_json::from_str::<toast::Reference>(r#"{"class_name":"X"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The stored type's class name (see [`crate::class_name`]).
    pub class_name: String,
    /// The record's id.
    pub id: Uuid,
}

impl Reference {
    /// A reference to `id` of class `class_name`.
    pub fn new(class_name: impl Into<String>, id: Uuid) -> Self {
        Reference {
            class_name: class_name.into(),
            id,
        }
    }
}

/// A reference as read by the field adapters: the same form as [`Reference`],
/// borrowing the class name from the input where the format allows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "Reference")]
pub(crate) struct RefIn<'a> {
    #[serde(borrow)]
    pub(crate) class_name: Cow<'a, str>,
    pub(crate) id: Uuid,
}

/// A reference as written by the field adapters: the same form as
/// [`Reference`], without an owned copy of the class name.
#[derive(Serialize)]
#[serde(rename = "Reference")]
pub(crate) struct RefOut<'a> {
    pub(crate) class_name: &'a str,
    pub(crate) id: Uuid,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.class_name, self.id)
    }
}
