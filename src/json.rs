//! `to_json` / `from_json` and friends: serialize then flush; prefetch then
//! deserialize.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use uuid::Uuid;

use crate::context::{current_or_err, Context};
use crate::error::{Error, Result};
use crate::reference::Reference;

/// Serializes `value` to JSON in the current scope, then flushes: when it
/// returns, every record the text references is stored.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope; the original error of an external
/// that failed; the backend's error when the flush fails (the text is then
/// not returned).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Serialize)]
/// struct Doc { #[serde(with = "toast::external")] body: String }
///
/// let store = toast::Store::memory();
/// let json = toast::scope(store.clone(), async {
///     toast::to_json(&Doc { body: "x".repeat(10_000) }).await
/// }).await??;
/// assert!(json.len() < 120);
/// assert_eq!(store.stats().records_saved, 1);
/// # Ok(()) }
/// ```
pub async fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let ctx = current_or_err()?;
    let text = encode(&ctx, || serde_json::to_string(value))?;
    ctx.flush().await?;
    Ok(text)
}

/// [`to_json`] into bytes.
///
/// # Errors
///
/// As [`to_json`].
pub async fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let ctx = current_or_err()?;
    let bytes = encode(&ctx, || serde_json::to_vec(value))?;
    ctx.flush().await?;
    Ok(bytes)
}

/// [`to_json`] into a `serde_json::Value`.
///
/// # Errors
///
/// As [`to_json`].
pub async fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<serde_json::Value> {
    let ctx = current_or_err()?;
    let value = encode(&ctx, || serde_json::to_value(value))?;
    ctx.flush().await?;
    Ok(value)
}

fn encode<R>(ctx: &Context, f: impl FnOnce() -> serde_json::Result<R>) -> Result<R> {
    ctx.clear_parked();
    f().map_err(|e| {
        ctx.take_parked_matching(&e.to_string())
            .unwrap_or_else(|| Error::validation_with(format!("cannot serialize: {e}"), e))
    })
}

fn decode<R>(ctx: &Context, f: impl FnOnce() -> serde_json::Result<R>) -> Result<R> {
    f().map_err(|e| {
        ctx.take_parked_matching(&e.to_string())
            .unwrap_or_else(|| Error::validation_with(format!("invalid document: {e}"), e))
    })
}

/// Deserializes JSON text in the current scope: first loads every reference
/// in it (one backend round trip per nesting level), then deserializes in
/// memory.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope, for malformed JSON or references,
/// a class-name mismatch, or stored data that no longer fits; [`Error::NotFound`]
/// for a reference with no record; the backend's error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Deserialize, Debug)]
/// struct Doc { #[serde(with = "toast::external")] body: String }
///
/// let text = r#"{"body": {"class_name": "String", "id": "00000000-0000-0000-0000-000000000001"}}"#;
/// let err = toast::scope(toast::Store::memory(), toast::from_json::<Doc>(text)).await?.unwrap_err();
/// assert!(err.is_not_found());
/// # Ok(()) }
/// ```
pub async fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    // Parsed as a `str`: serde_json then reads its strings without checking
    // each one's UTF-8 again (a reference alone is four strings).
    read_document(text.as_bytes(), || serde_json::from_str(text)).await
}

/// [`from_json`] from bytes.
///
/// # Errors
///
/// As [`from_json`].
pub async fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // UTF-8 is checked once; bytes that are not UTF-8 are parsed as bytes, so
    // that serde_json reports where the bad sequence is.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => from_json(text).await,
        Err(_) => read_document(bytes, || serde_json::from_slice(bytes)).await,
    }
}

/// Loads every reference in the JSON document `bytes`, then deserializes it
/// with `parse` in the current scope.
async fn read_document<T>(
    bytes: &[u8],
    parse: impl FnOnce() -> serde_json::Result<T>,
) -> Result<T> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    let plan = ctx.prefetch_planned(references_in_json(bytes)?).await?;
    ctx.with_plan(plan, || decode(&ctx, parse))
}

/// The references in a JSON document, a malformed one being a validation error.
///
/// The byte scan finds them in most documents; the serde walk handles the
/// rest (escaped keys, malformed input, which it reports).
pub(crate) fn references_in_json(bytes: &[u8]) -> Result<Vec<(Arc<str>, Uuid)>> {
    if let Some(found) = crate::scan::scan(bytes) {
        return Ok(found);
    }
    collect_references(&mut serde_json::Deserializer::from_slice(bytes))
        .map(crate::context::intern_classes)
        .map_err(|e| Error::validation_with(format!("invalid document: {e}"), e))
}

/// [`from_json`] from a `serde_json::Value`.
///
/// # Errors
///
/// As [`from_json`].
pub async fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    let references = collect_references(&value)
        .map_err(|e| Error::validation_with(format!("invalid document: {e}"), e))?;
    ctx.prefetch(references).await?;
    decode(&ctx, || serde_json::from_value(value))
}

/// Loads the records `references` name (and those nested in them) into the
/// current scope's cache, one backend round trip per nesting level. Use it with
/// [`collect_references`] to read formats other than JSON without blocking.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope; the backend's error.
pub async fn prefetch(references: Vec<Reference>) -> Result<()> {
    current_or_err()?.prefetch(references).await
}

/// Every `{"class_name", "id"}` object in a document, found without building it.
///
/// Works with any self-describing serde format (JSON, MessagePack, a
/// `serde_json::Value`).
///
/// # Errors
///
/// The format's error when the input is malformed.
///
/// # Examples
///
/// ```
/// let text = r#"[{"class_name": "Item", "id": "00000000-0000-0000-0000-000000000002"}, {"x": 1}]"#;
/// let mut de = serde_json::Deserializer::from_str(text);
/// let refs = toast::collect_references(&mut de).unwrap();
/// assert_eq!(refs.len(), 1);
/// assert_eq!(refs[0].class_name, "Item");
/// ```
pub fn collect_references<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<Reference>, D::Error> {
    let mut out = Vec::new();
    Walk {
        out: &mut out,
        keep_str: false,
    }
    .deserialize(deserializer)?;
    Ok(out)
}

/// What a walked value was, as far as reference detection cares.
enum Node<'de> {
    Str(Cow<'de, str>),
    Bytes(Vec<u8>),
    Other,
}

struct Walk<'a> {
    out: &'a mut Vec<Reference>,
    /// Keep string values (the value of a `class_name` or `id` key).
    keep_str: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

enum Field {
    ClassName,
    Id,
    Other,
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Field, D::Error> {
        d.deserialize_any(FieldSeed)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Field, E> {
        Ok(match v {
            "class_name" => Field::ClassName,
            "id" => Field::Id,
            _ => Field::Other,
        })
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Field, E> {
        Ok(match v {
            b"class_name" => Field::ClassName,
            b"id" => Field::Id,
            _ => Field::Other,
        })
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_unit<E>(self) -> std::result::Result<Field, E> {
        Ok(Field::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Field, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_i128<E>(self, _: i128) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_u128<E>(self, _: u128) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_unit<E>(self) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_none<E>(self) -> std::result::Result<Node<'de>, E> {
        Ok(Node::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Node<'de>, E> {
        Ok(if self.keep_str {
            Node::Str(Cow::Borrowed(v))
        } else {
            Node::Other
        })
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Node<'de>, E> {
        Ok(if self.keep_str {
            Node::Str(Cow::Owned(v.to_owned()))
        } else {
            Node::Other
        })
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Node<'de>, E> {
        Ok(if self.keep_str {
            Node::Str(Cow::Owned(v))
        } else {
            Node::Other
        })
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Node<'de>, E> {
        // Binary formats may write a UUID as 16 raw bytes.
        Ok(if self.keep_str && v.len() <= 64 {
            Node::Bytes(v.to_vec())
        } else {
            Node::Other
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Node<'de>, A::Error> {
        while seq
            .next_element_seed(Walk {
                out: &mut *self.out,
                keep_str: false,
            })?
            .is_some()
        {}
        Ok(Node::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Node<'de>, A::Error> {
        let mut entries = 0usize;
        let mut class_name = None;
        let mut id = None;
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            entries += 1;
            let keep_str = !matches!(field, Field::Other);
            let node = map.next_value_seed(Walk {
                out: &mut *self.out,
                keep_str,
            })?;
            match field {
                Field::ClassName => class_name = Some(node),
                Field::Id => id = Some(node),
                Field::Other => {}
            }
        }
        if entries == 2 {
            let id = match id {
                Some(Node::Str(s)) => Uuid::parse_str(&s).ok(),
                Some(Node::Bytes(b)) => Uuid::from_slice(&b).ok(),
                _ => None,
            };
            if let (Some(Node::Str(class_name)), Some(id)) = (class_name, id) {
                self.out.push(Reference::new(class_name.into_owned(), id));
            }
        }
        Ok(Node::Other)
    }
}

/// Loads the value `reference` names through the current scope: its cache
/// first, then one backend round trip per nesting level for what is missing.
///
/// Unlike [`crate::Store::get`], which uses a context of its own, the loaded
/// records stay in the scope's cache, so serializing the value again in the
/// same scope writes nothing that did not change.
///
/// # Errors
///
/// As [`from_json`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// let store = toast::Store::memory();
/// let r = store.put(&vec![1u8, 2]).await?;
/// let v: Vec<u8> = toast::scope(store, toast::load(&r)).await??;
/// assert_eq!(v, [1, 2]);
/// # Ok(()) }
/// ```
pub async fn load<T: DeserializeOwned>(reference: &Reference) -> Result<T> {
    let mut values = load_many::<T>(std::slice::from_ref(reference)).await?;
    values
        .pop()
        .ok_or_else(|| Error::not_found(&reference.class_name, reference.id))
}

/// [`load`] for several references of one type, in their order, with one
/// backend round trip per nesting level for all of them together.
///
/// # Errors
///
/// As [`from_json`], for the first reference that fails.
pub async fn load_many<T: DeserializeOwned>(references: &[Reference]) -> Result<Vec<T>> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    ctx.load_many(references).await
}
