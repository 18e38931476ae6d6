//! [`collect_references`]: the references of a document in any
//! self-describing serde format, found by walking it through serde.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use uuid::Uuid;

use crate::reference::Reference;

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
        depth: 0,
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
    /// How many containers enclose this value.
    depth: usize,
}

/// How deep a document may nest: a `serde_json::Value` has no limit of its
/// own, and the walk recurses once per level, so deeper input is an error
/// rather than a stack overflow. The same limit as serde_json's parser.
pub(crate) const MAX_NESTING: usize = 128;

impl<'a> Walk<'a> {
    /// The walk of a value one level further in.
    fn inner<E: serde::de::Error>(&mut self, keep_str: bool) -> std::result::Result<Walk<'_>, E> {
        if self.depth >= MAX_NESTING {
            return Err(E::custom(format!(
                "document nested more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(Walk {
            out: &mut *self.out,
            keep_str,
            depth: self.depth + 1,
        })
    }
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
    fn visit_some<D: Deserializer<'de>>(
        mut self,
        d: D,
    ) -> std::result::Result<Node<'de>, D::Error> {
        let keep_str = self.keep_str;
        d.deserialize_any(self.inner(keep_str)?)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        mut self,
        d: D,
    ) -> std::result::Result<Node<'de>, D::Error> {
        let keep_str = self.keep_str;
        d.deserialize_any(self.inner(keep_str)?)
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
    fn visit_seq<A: SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> std::result::Result<Node<'de>, A::Error> {
        while seq.next_element_seed(self.inner(false)?)?.is_some() {}
        Ok(Node::Other)
    }
    fn visit_map<A: MapAccess<'de>>(
        mut self,
        mut map: A,
    ) -> std::result::Result<Node<'de>, A::Error> {
        let mut entries = 0usize;
        let mut class_name = None;
        let mut id = None;
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            entries += 1;
            let keep_str = !matches!(field, Field::Other);
            let node = map.next_value_seed(self.inner(keep_str)?)?;
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
