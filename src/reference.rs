//! [`Reference`], the `{"class_name", "id"}` stand-in, and class-name derivation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

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
    /// The stored type's class name (see [`class_name`]).
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

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.class_name, self.id)
    }
}

/// A type that chooses its own class name instead of the derived one.
///
/// The derived name comes from [`std::any::type_name`] with module paths
/// removed; it changes when the type is renamed. Implement `Named` to pin it,
/// and use [`crate::external::named`].
///
/// # Examples
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Profile { name: String }
/// impl toast::Named for Profile { const CLASS_NAME: &'static str = "UserProfile"; }
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { #[serde(with = "toast::external::named")] profile: Profile }
/// ```
pub trait Named {
    /// The class name written into references and records.
    const CLASS_NAME: &'static str;
}

type Interned = LazyLock<RwLock<HashMap<&'static str, Arc<str>>>>;

/// `type_name` → derived class name.
static CLASS_NAMES: Interned = LazyLock::new(|| RwLock::new(HashMap::new()));
/// `Named::CLASS_NAME` → the same text, shared.
static NAMED: Interned = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The class name toast derives for `T`: its type name without module paths
/// (`my_app::model::Item` → `Item`, `alloc::vec::Vec<my_app::Item>` → `Vec<Item>`).
///
/// # Examples
///
/// ```
/// struct Item;
/// assert_eq!(&*toast::class_name::<Vec<Item>>(), "Vec<Item>");
/// assert_eq!(&*toast::class_name::<Option<String>>(), "Option<String>");
/// ```
pub fn class_name<T: ?Sized>() -> Arc<str> {
    let full = std::any::type_name::<T>();
    if let Ok(map) = CLASS_NAMES.read() {
        if let Some(name) = map.get(full) {
            return Arc::clone(name);
        }
    }
    let name: Arc<str> = Arc::from(short_type_name(full));
    if let Ok(mut map) = CLASS_NAMES.write() {
        map.insert(full, Arc::clone(&name));
    }
    name
}

/// An interned class name for a fixed string (for [`Named`] types).
pub(crate) fn static_class_name(name: &'static str) -> Arc<str> {
    if let Ok(map) = NAMED.read() {
        if let Some(found) = map.get(name) {
            return Arc::clone(found);
        }
    }
    let interned: Arc<str> = Arc::from(name);
    if let Ok(mut map) = NAMED.write() {
        map.entry(name).or_insert_with(|| Arc::clone(&interned));
    }
    interned
}

/// Strips module paths from every path segment of a type name.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        let last = segment.rsplit("::").next().unwrap_or_default();
        out.push_str(last);
        segment.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || "_:{}".contains(c) {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn strips_paths_inside_generics() {
        assert_eq!(short_type_name("alloc::vec::Vec<app::Item>"), "Vec<Item>");
        assert_eq!(
            short_type_name("std::collections::hash::map::HashMap<alloc::string::String, u8>"),
            "HashMap<String, u8>"
        );
        assert_eq!(
            short_type_name("(i32, &[core::option::Option<a::B>; 3])"),
            "(i32, &[Option<B>; 3])"
        );
        assert_eq!(short_type_name("u64"), "u64");
        assert_eq!(short_type_name("t::f::{{closure}}::v2::Item"), "Item");
    }
}
