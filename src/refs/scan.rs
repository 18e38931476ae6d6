//! The fast path for finding the references in a JSON document.
//!
//! [`crate::collect_references`] walks a document through serde, which costs a
//! noticeable part of decoding the values its references name. [`scan`] finds the same references
//! in one pass over the bytes, without building or decoding anything but the
//! `class_name` and `id` values, and gives up (returns `None`) on whatever it
//! does not handle itself, so that the caller runs the serde walk instead.

use std::sync::Arc;

use uuid::Uuid;

use crate::class_name::share_class;

/// How deep a document may nest before the scan leaves it to the serde walk
/// (whose JSON parser has the same recursion limit and reports it).
const MAX_NESTING: usize = 128;

/// The kind of an object key, as far as references care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    ClassName,
    Id,
    Other,
}

/// What an object saw under a `class_name` or `id` key.
#[derive(Clone, Copy)]
enum Slot<T> {
    Unset,
    Found(T),
    /// A value the walk would not accept (not a string, or not a UUID).
    Invalid,
}

/// An object being scanned: the facts that decide whether it is a reference.
struct Object<'a> {
    entries: usize,
    /// The key whose value comes next.
    key: Key,
    class_name: Slot<&'a [u8]>,
    id: Slot<Uuid>,
}

enum Frame<'a> {
    Array,
    Object(Object<'a>),
}

/// What the next token may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Value,
    /// A value, or `]` right after `[`.
    ValueOrClose,
    Key,
    /// A key, or `}` right after `{`.
    KeyOrClose,
    Colon,
    CommaOrClose,
    /// The top-level value is complete: only whitespace may follow.
    End,
}

/// The references of `bytes`, exactly as [`crate::collect_references`] finds
/// them (every object with exactly two entries, a string `class_name` and an
/// `id` string that parses as a UUID, in the order the objects close), or
/// `None` when the document has something this scan leaves to the walk: an
/// escaped key, an escaped `class_name` or `id` string, text that is not UTF-8
/// in a class name, deeper nesting than [`MAX_NESTING`], or a structure that
/// is not JSON. Scalars are skipped, not checked: a malformed number or
/// literal is reported by the deserialization that follows.
pub(crate) fn scan(bytes: &[u8]) -> Option<Vec<(Arc<str>, Uuid)>> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut want = Want::Value;
    // The class name of the previous reference: a document's references
    // mostly share one, so its text is shared instead of allocated each time.
    let mut last_class: Option<Arc<str>> = None;
    let mut i = 0;
    loop {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(i) {
            i += 1;
        }
        let Some(&c) = bytes.get(i) else {
            return (want == Want::End).then_some(out);
        };
        match want {
            Want::End => return None,
            Want::Colon => {
                if c != b':' {
                    return None;
                }
                i += 1;
                want = Want::Value;
            }
            Want::CommaOrClose => match (c, stack.last()) {
                (b',', Some(Frame::Object(_))) => {
                    i += 1;
                    want = Want::Key;
                }
                (b',', Some(Frame::Array)) => {
                    i += 1;
                    want = Want::Value;
                }
                (b'}', Some(Frame::Object(_))) | (b']', Some(Frame::Array)) => {
                    i += 1;
                    close(&mut stack, &mut out, &mut last_class)?;
                    want = after_value(&stack);
                }
                _ => return None,
            },
            Want::Key | Want::KeyOrClose => match c {
                b'"' => {
                    let (start, end, escaped) = string(bytes, i + 1)?;
                    if escaped {
                        // It might spell `class_name` or `id` once unescaped.
                        return None;
                    }
                    i = end + 1;
                    let Some(Frame::Object(object)) = stack.last_mut() else {
                        return None;
                    };
                    object.entries += 1;
                    object.key = match &bytes[start..end] {
                        b"class_name" => Key::ClassName,
                        b"id" => Key::Id,
                        _ => Key::Other,
                    };
                    want = Want::Colon;
                }
                b'}' if want == Want::KeyOrClose => {
                    i += 1;
                    close(&mut stack, &mut out, &mut last_class)?;
                    want = after_value(&stack);
                }
                _ => return None,
            },
            Want::Value | Want::ValueOrClose => {
                if c == b']' && want == Want::ValueOrClose {
                    i += 1;
                    close(&mut stack, &mut out, &mut last_class)?;
                    want = after_value(&stack);
                    continue;
                }
                let parent_key = match stack.last() {
                    Some(Frame::Object(object)) => object.key,
                    _ => Key::Other,
                };
                match c {
                    b'{' | b'[' => {
                        mark_invalid(&mut stack, parent_key);
                        if stack.len() >= MAX_NESTING {
                            return None;
                        }
                        if let Some((class, id, end)) =
                            (c == b'{').then(|| compact_reference(bytes, i)).flatten()
                        {
                            // The same reference the steps below would find.
                            push_reference(&mut out, &mut last_class, class, id)?;
                            i = end;
                            want = after_value(&stack);
                            continue;
                        }
                        i += 1;
                        if c == b'{' {
                            stack.push(Frame::Object(Object {
                                entries: 0,
                                key: Key::Other,
                                class_name: Slot::Unset,
                                id: Slot::Unset,
                            }));
                            want = Want::KeyOrClose;
                        } else {
                            stack.push(Frame::Array);
                            want = Want::ValueOrClose;
                        }
                        continue;
                    }
                    b'"' => {
                        let (start, end, escaped) = string(bytes, i + 1)?;
                        i = end + 1;
                        if parent_key != Key::Other {
                            if escaped {
                                return None;
                            }
                            let text = &bytes[start..end];
                            if let Some(Frame::Object(object)) = stack.last_mut() {
                                if parent_key == Key::ClassName {
                                    object.class_name = Slot::Found(text);
                                } else {
                                    object.id = match Uuid::try_parse_ascii(text) {
                                        Ok(id) => Slot::Found(id),
                                        Err(_) => Slot::Invalid,
                                    };
                                }
                            }
                        }
                    }
                    b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => {
                        // A number or a literal, checked by the deserializer.
                        while let Some(
                            b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z',
                        ) = bytes.get(i)
                        {
                            i += 1;
                        }
                        mark_invalid(&mut stack, parent_key);
                    }
                    _ => return None,
                }
                want = after_value(&stack);
            }
        }
    }
}

/// The length of a hyphenated UUID's text.
const HYPHENATED: usize = 36;

/// A reference in the compact form toast writes, `{"class_name":"…","id":"…"}`
/// with nothing between the tokens, starting at `at`: its class name's bytes,
/// its id and the offset after its `}`. `None` for anything else (other
/// spacing or order, more entries, an escape, an id that is not a UUID),
/// which the token-by-token scan then reads as it reads any object.
fn compact_reference(bytes: &[u8], at: usize) -> Option<(&[u8], Uuid, usize)> {
    const OPEN: &[u8] = br#"{"class_name":""#;
    const BETWEEN: &[u8] = br#"","id":""#;
    if !bytes.get(at..)?.starts_with(OPEN) {
        return None;
    }
    let (class_at, class_end, false) = string(bytes, at + OPEN.len())? else {
        return None;
    };
    if !bytes.get(class_end..)?.starts_with(BETWEEN) {
        return None;
    }
    let id_at = class_end + BETWEEN.len();
    // The id toast writes: 36 characters, then `"}`. Parsed where it stands,
    // without looking for the string's end first (no escape fits in a UUID,
    // so a UUID followed by `"` is the whole string).
    if let Some(id) = bytes
        .get(id_at..id_at + HYPHENATED + 2)
        .filter(|text| text.ends_with(b"\"}"))
        .and_then(|text| Uuid::try_parse_ascii(&text[..HYPHENATED]).ok())
    {
        return Some((&bytes[class_at..class_end], id, id_at + HYPHENATED + 2));
    }
    let (id_at, id_end, false) = string(bytes, id_at)? else {
        return None;
    };
    if bytes.get(id_end + 1) != Some(&b'}') {
        return None;
    }
    let id = Uuid::try_parse_ascii(&bytes[id_at..id_end]).ok()?;
    Some((&bytes[class_at..class_end], id, id_end + 2))
}

/// After a complete value: more of the enclosing container, or the end.
fn after_value(stack: &[Frame<'_>]) -> Want {
    if stack.is_empty() {
        Want::End
    } else {
        Want::CommaOrClose
    }
}

/// The value under a `class_name` or `id` key is not a string.
fn mark_invalid(stack: &mut [Frame<'_>], key: Key) {
    if let Some(Frame::Object(object)) = stack.last_mut() {
        match key {
            Key::ClassName => object.class_name = Slot::Invalid,
            Key::Id => object.id = Slot::Invalid,
            Key::Other => {}
        }
    }
}

/// Pops the innermost container; an object that is a reference goes to `out`.
fn close(
    stack: &mut Vec<Frame<'_>>,
    out: &mut Vec<(Arc<str>, Uuid)>,
    last_class: &mut Option<Arc<str>>,
) -> Option<()> {
    let Frame::Object(object) = stack.pop()? else {
        return Some(());
    };
    if let (2, Slot::Found(class), Slot::Found(id)) = (object.entries, object.class_name, object.id)
    {
        push_reference(out, last_class, class, id)?;
    }
    Some(())
}

/// Adds the reference `(class, id)` to `out`, its class name shared with the
/// previous reference's when they are equal; `None` (the scan gives up) when
/// the class name is not UTF-8.
fn push_reference(
    out: &mut Vec<(Arc<str>, Uuid)>,
    last_class: &mut Option<Arc<str>>,
    class: &[u8],
    id: Uuid,
) -> Option<()> {
    out.push((share_class(last_class, class)?, id));
    Some(())
}

/// The string whose text starts at `start` (after its opening quote): the
/// text's end (its closing quote) and whether it has escapes. `None` when it
/// never closes.
fn string(bytes: &[u8], start: usize) -> Option<(usize, usize, bool)> {
    let mut escaped = false;
    let mut i = start;
    loop {
        i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
        if bytes[i] == b'"' {
            return Some((start, i, escaped));
        }
        // A backslash escapes the next byte (`\"`, `\\`, `\u…`: the hex
        // digits of `\u` cannot be a quote).
        escaped = true;
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the serde walk finds, in the scan's form.
    fn walk(text: &[u8]) -> Option<Vec<(Arc<str>, Uuid)>> {
        let refs =
            crate::collect_references(&mut serde_json::Deserializer::from_slice(text)).ok()?;
        Some(
            refs.into_iter()
                .map(|r| (Arc::from(r.class_name), r.id))
                .collect(),
        )
    }

    const ID: &str = "0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f";

    #[test]
    fn finds_what_the_walk_finds_or_gives_up() {
        let cases = [
            format!(r#"{{"class_name":"Item","id":"{ID}"}}"#),
            format!(r#"{{ "id" : "{ID}" , "class_name" : "Vec<Item>" }}"#),
            format!(r#"[{{"class_name":"A","id":"{ID}"}},{{"class_name":"B","id":"{ID}"}}]"#),
            format!(r#"{{"a":{{"class_name":"A","id":"{ID}"}},"b":[1,2.5e3,true,null,"x"]}}"#),
            // Not references: three entries, a bad id, a non-string class.
            format!(r#"{{"class_name":"A","id":"{ID}","x":1}}"#),
            r#"{"class_name":"A","id":"not-a-uuid"}"#.to_owned(),
            format!(r#"{{"class_name":42,"id":"{ID}"}}"#),
            format!(r#"{{"class_name":["A"],"id":"{ID}"}}"#),
            format!(r#"{{"class_name":"A","class_name":"{ID}"}}"#),
            format!(r#"{{"class_name":{{"class_name":"A","id":"{ID}"}},"id":"{ID}"}}"#),
            // A reference as text inside a string is not one.
            format!(r#"{{"note":"{{\"class_name\":\"A\",\"id\":\"{ID}\"}}"}}"#),
            format!(r#"{{"note":"a \\\" quote and \\\\","r":{{"class_name":"A","id":"{ID}"}}}}"#),
            // Other UUID spellings the walk accepts.
            r#"{"class_name":"A","id":"0b6f5c1e8f5e4b7c9d3a2a1b0c9d8e7f"}"#.to_owned(),
            "[]".to_owned(),
            "{}".to_owned(),
            "  7  ".to_owned(),
            // Near the compact form toast writes: each read as any object.
            format!(r#"{{"class_name":"A","id":"{ID}" }}"#),
            format!(r#"{{"class_name":"","id":"{ID}"}}"#),
            format!(r#"{{"class_name":"A","id":"{{{ID}}}"}}"#),
            format!(r#"{{"class_name":"A","id":"{ID}""#),
            format!(r#"{{"class_name":"A","id":"0{ID}"}}"#),
            format!(
                r#"{{"x":[{{"class_name":"A","id":"{ID}"}},{{"class_name":"A","id":"{ID}"}}]}}"#
            ),
            // 36 characters that are not a UUID, or a UUID and more, where
            // the compact form's id is read in place.
            r#"{"class_name":"A","id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7g"}"#.to_owned(),
            format!(r#"{{"class_name":"A","id":"{ID}x"}}"#),
            format!(r#"{{"class_name":"A","id":"{ID}","x":1}}"#),
            // A class sharing the previous one's text, then another, then
            // the first again (each compared with the previous one).
            format!(
                r#"[{{"class_name":"A","id":"{ID}"}},{{"class_name":"A","id":"{ID}"}},{{"class_name":"AB","id":"{ID}"}},{{"class_name":"A","id":"{ID}"}}]"#
            ),
        ];
        for case in &cases {
            assert_eq!(scan(case.as_bytes()), walk(case.as_bytes()), "{case}");
        }
    }

    #[test]
    fn gives_up_on_what_it_leaves_to_the_walk() {
        let cases = [
            // Escaped key or reference fields: the walk unescapes them.
            format!(r#"{{"class\u005fname":"A","id":"{ID}"}}"#),
            format!(r#"{{"class_name":"A\u0042","id":"{ID}"}}"#),
            format!(r#"{{"class_name":"A\"B","id":"{ID}"}}"#),
            format!(r#"{{"class_name":"A","id":"\u0030{ID}"}}"#),
            // Not JSON structure: the walk reports it.
            r#"{"item": "#.to_owned(),
            r#"{"a" 1}"#.to_owned(),
            r#"[1,]"#.to_owned(),
            r#"{"a":1,}"#.to_owned(),
            r#"[1] [2]"#.to_owned(),
            format!(r#"{{"class_name":"A","id":"{ID}"}}}}"#),
            r#"{"a":1]"#.to_owned(),
            r#""unterminated"#.to_owned(),
            r#"{1:2}"#.to_owned(),
            "[".repeat(MAX_NESTING + 1),
            String::new(),
        ];
        for case in &cases {
            assert_eq!(scan(case.as_bytes()), None, "{case}");
        }
        // Not UTF-8 in a class name.
        let mut bytes = format!(r#"{{"class_name":"A","id":"{ID}"}}"#).into_bytes();
        bytes[15] = 0xff;
        assert_eq!(scan(&bytes), None);
    }

    /// JSON values rich in near-references, strings with escapes and nesting.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{json, Value};
        let text = prop_oneof![
            Just("class_name".to_owned()),
            Just("id".to_owned()),
            Just(ID.to_owned()),
            Just("Item".to_owned()),
            any::<String>(),
            "[\"\\\\{}:,a-z ]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            text.clone().prop_map(Value::String),
            (text.clone(), any::<bool>()).prop_map(|(class, valid)| {
                json!({"class_name": class, "id": if valid { ID } else { "nope" }})
            }),
        ];
        leaf.prop_recursive(6, 64, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn agrees_with_the_walk(value in value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_vec_pretty(&value)
            } else {
                serde_json::to_vec(&value)
            }
            .unwrap();
            let found = scan(&text);
            // Without a single escape the scan handles every document.
            prop_assert!(found.is_some() || text.contains(&b'\\'));
            if found.is_some() {
                prop_assert_eq!(found, walk(&text));
            }
        }
    }
}
