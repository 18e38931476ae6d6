//! The `#[serde(with = "toast::external")]` field adapter.
//!
//! On serialization the field's value is written to the current scope's buffer
//! and the document gets `{"class_name": "...", "id": "<uuid>"}` in its place;
//! the id is derived from the content, so equal values share one record. On
//! deserialization the reference is resolved from the scope's cache (filled by
//! [`crate::from_json`]) or loaded on the spot where the thread may block.
//! Externals nest at most 64 levels deep, on write and on read; deeper is an
//! [`crate::Error::Validation`].
//!
//! # Examples
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Item { name: String }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     order_id: u32,
//!     #[serde(with = "toast::external")]
//!     items: Vec<Item>,
//!     #[serde(with = "toast::external::option")]
//!     note: Option<String>,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> toast::Result<()> {
//! let store = toast::Store::memory();
//! let order = Order { order_id: 7, items: vec![Item { name: "pear".into() }], note: None };
//!
//! let json = toast::scope(store.clone(), toast::to_json(&order)).await??;
//! let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
//! assert_eq!(doc["items"]["class_name"], "Vec<Item>");
//! assert!(doc["note"].is_null());
//!
//! let back: Order = toast::scope(store, toast::from_json(&json)).await??;
//! assert_eq!(back, order);
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use std::sync::Arc;

use uuid::Uuid;

use crate::class_name::{class_name, Expected};
use crate::reference::{RefIn, RefOut};
use crate::scope::read::resolve_external;
use crate::scope::write::store_external;

/// Stores `value` as an external of `class` (under `id`, or its content id
/// when `None`) and writes its reference: every adapter and `External<T>`.
pub(crate) fn write_external<T, S>(
    value: &T,
    class: Arc<str>,
    id: Option<Uuid>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    T: Serialize + ?Sized,
    S: Serializer,
{
    let (class_name, id) = store_external(value, class, id).map_err(S::Error::custom)?;
    RefOut {
        class_name: &class_name,
        id,
    }
    .serialize(serializer)
}

/// Resolves a reference that was read to its value (of class `expected`),
/// with the id it was stored under.
fn resolve_read<T: DeserializeOwned, E: serde::de::Error>(
    reference: &RefIn<'_>,
    expected: Expected,
) -> Result<(T, Uuid), E> {
    resolve_external(&reference.class_name, reference.id, expected)
        .map(|value| (value, reference.id))
        .map_err(E::custom)
}

/// Reads a reference and resolves it: every adapter and `External<T>`.
pub(crate) fn read_external<'de, T, D>(
    deserializer: D,
    expected: Expected,
) -> Result<(T, Uuid), D::Error>
where
    T: DeserializeOwned,
    D: Deserializer<'de>,
{
    resolve_read(&RefIn::deserialize(deserializer)?, expected)
}

/// Stores `value` out of line and serializes its [`Reference`](crate::Reference).
///
/// # Errors
///
/// Outside a scope, or when `value` cannot be serialized as JSON; the typed
/// error is kept for [`crate::to_json`] / [`crate::take_error`].
pub fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + ?Sized,
    S: Serializer,
{
    write_external(value, class_name::<T>(), None, serializer)
}

/// Reads a [`Reference`](crate::Reference) and resolves it to the stored value.
///
/// # Errors
///
/// A malformed reference, a class-name mismatch, a missing record, or stored
/// data that does not fit `T`; the typed error is kept for
/// [`crate::from_json`] / [`crate::take_error`].
pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: DeserializeOwned,
    D: Deserializer<'de>,
{
    read_external(deserializer, Expected::of::<T>()).map(|(value, _)| value)
}

/// The same for `Option<T>` fields: `None` stays `null`, inline; `Some` is stored.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Profile {
///     #[serde(with = "toast::external::option", default)]
///     avatar: Option<Vec<u8>>,
/// }
/// ```
pub mod option {
    use super::*;

    struct Out<'a, T: ?Sized>(&'a T);

    impl<T: Serialize + ?Sized> Serialize for Out<'_, T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, serializer)
        }
    }

    /// Serializes `None` as null and `Some(v)` as a reference to stored `v`.
    ///
    /// # Errors
    ///
    /// As [`super::serialize`].
    pub fn serialize<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            None => serializer.serialize_none(),
            Some(v) => serializer.serialize_some(&Out(v)),
        }
    }

    /// Reads null as `None` and a reference as `Some(stored value)`.
    ///
    /// # Errors
    ///
    /// As [`super::deserialize`].
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: DeserializeOwned,
        D: Deserializer<'de>,
    {
        match Option::<RefIn<'de>>::deserialize(deserializer)? {
            None => Ok(None),
            Some(reference) => {
                resolve_read(&reference, Expected::of::<T>()).map(|(value, _)| Some(value))
            }
        }
    }
}

/// The same for types that pin their class name with [`crate::Named`].
pub mod named {
    use super::*;
    use crate::class_name::{static_class_name, Named};

    /// Stores `value` under `T::CLASS_NAME`.
    ///
    /// # Errors
    ///
    /// As [`super::serialize`].
    pub fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize + Named + ?Sized,
        S: Serializer,
    {
        write_external(value, static_class_name(T::CLASS_NAME), None, serializer)
    }

    /// Resolves a reference whose class name must be `T::CLASS_NAME`.
    ///
    /// # Errors
    ///
    /// As [`super::deserialize`].
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: DeserializeOwned + Named,
        D: Deserializer<'de>,
    {
        read_external(deserializer, Expected::named(T::CLASS_NAME)).map(|(value, _)| value)
    }
}
