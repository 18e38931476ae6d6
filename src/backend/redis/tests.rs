//! Unit tests of the Redis backend: the layout, keys, chunks, and a live
//! save in many chunks on the shared server.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::DateTime;
use uuid::Uuid;

use super::codec::*;
use super::keys::*;
use super::*;
use crate::backend::support::batch::{chunk_ranges, distinct};
use crate::backend::support::Reference;

fn shared() -> Shared {
    Shared {
        url: "redis://127.0.0.1:6379/".to_owned(),
        host_port: "127.0.0.1:6379".to_owned(),
        prefix: "toast".to_owned(),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        update: Script::new(UPDATE_SCRIPT),
    }
}

fn sample(refs: Vec<Reference>) -> Record {
    let mut r = Record::new(
        Key::new("acme", "Vec<Item>", Uuid::new_v4()),
        Bytes::from_static(br#"[{"a":1}]"#),
        refs,
    );
    r.schema_version = 7;
    r.created_at = DateTime::from_timestamp_nanos(1_700_000_000_123_456_789);
    r.updated_at = DateTime::from_timestamp_nanos(1_700_000_001_987_654_321);
    r
}

fn bytes_of(record: &Record) -> Vec<u8> {
    let e = encode(record).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&e.head);
    out.extend_from_slice(&e.refs);
    out.extend_from_slice(e.data);
    assert_eq!(out.len(), e.len());
    out
}

#[test]
fn the_layout_is_exactly_as_documented() {
    let r = sample(Vec::new());
    let v = bytes_of(&r);
    assert_eq!(v[0], 0xF7);
    assert_eq!(v[1], 1);
    assert_eq!(v[2..6], 7u32.to_be_bytes());
    assert_eq!(v[6..14], 1_700_000_000_123_456_789i64.to_be_bytes());
    assert_eq!(v[14..22], 1_700_000_001_987_654_321i64.to_be_bytes());
    assert_eq!(v[22..26], 0u32.to_be_bytes());
    assert_eq!(&v[26..], br#"[{"a":1}]"#);

    let refs = vec![Reference::new("Leaf", Uuid::nil())];
    let v = bytes_of(&sample(refs));
    let json = br#"[{"class_name":"Leaf","id":"00000000-0000-0000-0000-000000000000"}]"#;
    assert_eq!(v[22..26], u32::try_from(json.len()).unwrap().to_be_bytes());
    assert_eq!(&v[26..26 + json.len()], json);
    assert_eq!(&v[26 + json.len()..], br#"[{"a":1}]"#);
}

#[test]
fn decode_inverts_encode() {
    let s = shared();
    for refs in [
        Vec::new(),
        vec![
            Reference::new("A<b>", Uuid::new_v4()),
            Reference::new("C", Uuid::new_v4()),
        ],
    ] {
        let r = sample(refs);
        for zero_copy in [true, false] {
            let value = bytes_of(&r);
            let (start, len) = (value.as_ptr() as usize, value.len());
            let back = s.decode(&r.key, value, zero_copy).unwrap();
            assert_eq!(back, r);
            // Inside the value's own buffer, or a copy elsewhere.
            let at = back.data.as_ptr() as usize;
            let sliced = at > start && at < start + len;
            assert_eq!(sliced, zero_copy, "zero_copy {zero_copy}");
        }
    }
    // A record never updated: both timestamps the same instant.
    let mut fresh = sample(Vec::new());
    fresh.updated_at = fresh.created_at;
    let back = s.decode(&fresh.key, bytes_of(&fresh), true).unwrap();
    assert_eq!(back, fresh);
}

#[test]
fn the_header_parser_rejects_truncated_and_garbage_values() {
    let s = shared();
    let r = sample(vec![Reference::new("Leaf", Uuid::new_v4())]);
    let value = bytes_of(&r);
    let refs_end = HEADER_LEN + usize::try_from(be_u32(&value, OFF_REFS_LEN).unwrap()).unwrap();
    // Every truncation that cuts the header or the refs.
    for len in 0..refs_end {
        let err = s.decode(&r.key, value[..len].to_vec(), false).unwrap_err();
        assert!(err.is_validation(), "{len}: {err}");
        let text = err.to_string();
        assert!(text.contains("is corrupted"), "{len}: {text}");
        assert!(
            text.contains("Vec<Item>") && text.contains(&r.key.id.to_string()),
            "{text}"
        );
    }
    // Cut right after the refs: a record with empty data (not JSON, but
    // the layout is intact; the type's deserializer reports it).
    assert!(s.decode(&r.key, value[..refs_end].to_vec(), true).is_ok());

    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("json text", br#"{"not":"a record"}"#.to_vec()),
        ("empty", Vec::new()),
        ("magic only", vec![MAGIC]),
        ("old hash-era text", b"1".to_vec()),
    ];
    let mut wrong_version = value.clone();
    wrong_version[1] = 2;
    bad.push(("wrong version", wrong_version));
    let mut wrong_magic = value.clone();
    wrong_magic[0] = b'{';
    bad.push(("wrong magic", wrong_magic));
    let mut long_refs = value.clone();
    long_refs[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
    bad.push(("refs length past the end", long_refs));
    let mut garbage_refs = value.clone();
    garbage_refs[HEADER_LEN] = b'!';
    bad.push(("refs not JSON", garbage_refs));
    let mut not_refs = bytes_of(&sample(Vec::new()));
    let junk = br#"{"x":1}"#;
    not_refs[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&7u32.to_be_bytes());
    not_refs.splice(HEADER_LEN..HEADER_LEN, junk.iter().copied());
    bad.push(("refs JSON of another shape", not_refs));
    for (what, v) in bad {
        let err = s.decode(&r.key, v, true).unwrap_err();
        assert!(err.is_validation(), "{what}: {err}");
        assert!(err.to_string().contains("is corrupted"), "{what}: {err}");
    }
    // The fixed header alone (what list reads) parses; shorter does not.
    let head = parse_header(&value[..HEADER_LEN]).unwrap();
    assert_eq!(head.created_at, r.created_at);
    assert_eq!(head.updated_at, r.updated_at);
    assert!(parse_header(&value[..HEADER_LEN - 1]).is_err());
}

#[test]
fn timestamps_outside_i64_nanoseconds_are_validation_errors() {
    let mut r = sample(Vec::new());
    r.created_at = DateTime::from_timestamp(i64::from(i32::MAX) * 10, 0).unwrap();
    let err = encode(&r).err().unwrap();
    assert!(err.is_validation(), "{err}");
    assert!(err.to_string().contains("created_at"), "{err}");
    // The extremes that do fit round-trip exactly.
    let s = shared();
    for ns in [i64::MIN, -1, 0, i64::MAX] {
        let mut r = sample(Vec::new());
        r.created_at = DateTime::from_timestamp_nanos(ns);
        r.updated_at = r.created_at;
        assert_eq!(s.decode(&r.key, bytes_of(&r), true).unwrap(), r);
    }
}

#[test]
fn chunks_respect_bytes_and_counts() {
    assert!(chunk_ranges([], 10, 10).is_empty());
    assert_eq!(chunk_ranges([3, 3, 3, 3], 6, 10), vec![0..2, 2..4]);
    assert_eq!(chunk_ranges([3, 3, 3, 3], 7, 10), vec![0..2, 2..4]);
    assert_eq!(chunk_ranges([1; 5], 100, 2), vec![0..2, 2..4, 4..5]);
    // A record bigger than the byte limit goes alone.
    assert_eq!(chunk_ranges([1, 50, 1], 10, 10), vec![0..1, 1..2, 2..3]);
    assert_eq!(chunk_ranges([50], 10, 10), vec![0..1]);
    let ranges = chunk_ranges(vec![1024; 5000], 2 * 1024 * 1024, SAVE_CHUNK_RECORDS);
    assert_eq!(ranges, vec![0..2048, 2048..4096, 4096..5000]);
    let ranges = chunk_ranges(vec![1; 25_000], SAVE_CHUNK_BYTES, 10_000);
    assert_eq!(ranges, vec![0..10_000, 10_000..20_000, 20_000..25_000]);
}

#[test]
fn key_args_are_the_bytes_of_key_of() {
    let s = shared();
    for (tenant, class) in [
        ("acme", "Vec<Item>"),
        ("a:b*c", "x%y"),
        ("", ""),
        ("ü:ß\n\u{7f}[]{}?\\", "%%"),
    ] {
        let key = Key::new(tenant, class, Uuid::new_v4());
        let mut heads = s.key_heads();
        let mut bytes = Vec::new();
        let arg = heads.arg(&key);
        arg.write_to(&mut bytes);
        assert_eq!(arg.len(), bytes.len());
        assert_eq!(String::from_utf8(bytes).unwrap(), s.key_of(&key));
    }
    // Heads are kept per (tenant, class) pair, also beyond KEY_HEADS pairs.
    let mut keys = vec![
        Key::new("a", "X", Uuid::new_v4()),
        Key::new("a", "X", Uuid::new_v4()),
        Key::new("a:b", "X", Uuid::new_v4()),
        Key::new("a:b", "Y*", Uuid::new_v4()),
        Key::new("a", "X", Uuid::new_v4()),
    ];
    for i in 0..3 * KEY_HEADS {
        keys.push(Key::new(
            "t",
            format!("C{}", i % (KEY_HEADS + 3)),
            Uuid::new_v4(),
        ));
    }
    let mut heads = s.key_heads();
    for key in &keys {
        let mut bytes = Vec::new();
        heads.arg(key).write_to(&mut bytes);
        assert_eq!(String::from_utf8(bytes).unwrap(), s.key_of(key));
    }
}

#[test]
fn distinct_keeps_order_and_drops_only_equal_keys() {
    let id = Uuid::new_v4();
    let keys = [
        Key::new("a", "X", id),
        Key::new("b", "X", id),
        Key::new("a", "Y", Uuid::new_v4()),
        Key::new("a", "X", id),
    ];
    let got: Vec<Key> = distinct(&keys).into_iter().cloned().collect();
    assert_eq!(got, keys[..3].to_vec());
    assert_eq!(distinct(&keys[..3]).len(), 3);
    assert!(distinct(&[]).is_empty());
    // Past the pairwise size: the same answer through the sets.
    let many: Vec<Key> = (0..30)
        .map(|i| keys[i % 3].clone())
        .chain((0..10).map(|_| Key::new("a", "X", Uuid::new_v4())))
        .collect();
    let got: Vec<Key> = distinct(&many).into_iter().cloned().collect();
    let mut want = keys[..3].to_vec();
    want.extend_from_slice(&many[30..]);
    assert_eq!(got, want);
}

/// A backend on the shared server (`TOAST_TEST_REDIS_URL`) under a fresh
/// prefix, with records expiring after an hour.
async fn live(limits: Limits) -> RedisBackend {
    let base = std::env::var("TOAST_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    let prefix = format!("u{}", &Uuid::new_v4().simple().to_string()[..16]);
    let url = format!("{base}{sep}prefix={prefix}&ttl=3600");
    RedisBackend::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the shared Redis server is not reachable: {e}"))
        .with_limits(limits)
}

#[tokio::test]
async fn a_save_in_many_chunks_mixing_new_and_existing_keys() {
    let backend = live(Limits {
        save_chunk_bytes: 200,
        save_chunk_records: 4,
        load_chunk_keys: 3,
    })
    .await;
    let old = chrono::Utc::now() - chrono::Duration::hours(1);
    let records: Vec<Record> = (0..23)
        .map(|i| {
            let mut r = Record::new(
                Key::new("t", "Chunked", Uuid::new_v4()),
                Bytes::from(format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(i * 7))),
                vec![Reference::new("Ref", Uuid::new_v4())],
            );
            r.created_at = old;
            r.updated_at = old;
            r
        })
        .collect();
    // Every third record exists before the big save.
    let existing: Vec<Record> = records.iter().step_by(3).cloned().collect();
    backend.save(&existing).await.unwrap();
    assert!(chunk_ranges(records.iter().map(|r| encode(r).unwrap().len()), 200, 4).len() > 5);

    let now = chrono::Utc::now();
    let mut updated: Vec<Record> = records.clone();
    for r in &mut updated {
        r.created_at = now;
        r.updated_at = now;
        r.data = Bytes::from(format!("[{}]", r.data.len()));
    }
    // The same key twice in one save: the later one wins.
    let mut twice = updated[1].clone();
    twice.data = Bytes::from_static(b"\"second\"");
    updated.push(twice);
    backend.save(&updated).await.unwrap();

    let mut keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    keys.push(keys[0].clone());
    keys.push(Key::new("t", "Chunked", Uuid::new_v4()));
    let loaded = backend.load(&keys).await.unwrap();
    assert_eq!(loaded.len(), records.len());
    for (i, r) in records.iter().enumerate() {
        let got = loaded.iter().find(|l| l.key == r.key).unwrap();
        let want_created = if i % 3 == 0 { old } else { now };
        assert_eq!(got.created_at, want_created, "record {i}");
        assert_eq!(got.updated_at, now, "record {i}");
        assert_eq!(got.refs, r.refs, "record {i}");
        if i == 1 {
            assert_eq!(&got.data[..], b"\"second\"");
        } else {
            assert_eq!(got.data, updated[i].data, "record {i}");
        }
    }
    assert_eq!(backend.delete(&keys).await.unwrap(), 23);
}

#[test]
fn escape_is_injective_on_tricky_names() {
    let names = [
        "", "a", "a:b", "a%3Ab", "a%", "*", "a*", "\\*", "[x]", "{t}", "a\nb", "a%0Ab", "ü:ß",
    ];
    let escaped: BTreeSet<String> = names.iter().map(|n| escape(n)).collect();
    assert_eq!(escaped.len(), names.len());
    for e in &escaped {
        assert!(
            !e.contains([':', '*', '?', '[', ']', '\\', '{', '}', '\n']),
            "{e}"
        );
    }
    assert_eq!(
        escape("a:b*c?[d]\\{e}%\u{7f}"),
        "a%3Ab%2Ac%3F%5Bd%5D%5C%7Be%7D%25%7F"
    );
    assert_eq!(escape("\u{0}\u{1f} é€"), "%00%1F é€");
    // Names with nothing to escape are borrowed, not copied.
    assert!(matches!(keys::escaped("bench-ü<Item>"), Cow::Borrowed(_)));
    assert!(matches!(keys::escaped("a:b"), Cow::Owned(_)));
}

#[test]
fn a_thread_keeps_the_heads_it_made_by_prefix_tenant_and_class() {
    let a = made_head("toast", "acme", "app::Item");
    assert_eq!(a.as_bytes(), b"toast:acme:app%3A%3AItem:");
    // Kept: the same bytes, not made again.
    assert!(Arc::ptr_eq(&a, &made_head("toast", "acme", "app::Item")));
    // Another backend's prefix, tenant or class is another head.
    assert_eq!(
        made_head("other", "acme", "app::Item").as_bytes(),
        b"other:acme:app%3A%3AItem:"
    );
    assert_eq!(
        made_head("toast", "acme:x", "app::Item").as_bytes(),
        b"toast:acme%3Ax:app%3A%3AItem:"
    );
    assert_eq!(
        made_head("toast", "acme", "Item").as_bytes(),
        b"toast:acme:Item:"
    );
    // More pairs than are kept: the oldest goes, and is made again, equal.
    for i in 0..2 * KEY_HEADS {
        made_head("toast", "acme", &format!("C{i}"));
    }
    let again = made_head("toast", "acme", "app::Item");
    assert!(!Arc::ptr_eq(&a, &again));
    assert_eq!(a, again);
}

#[test]
fn glob_escape_escapes_metacharacters() {
    assert_eq!(glob_escape("toast:a:b:"), "toast:a:b:");
    assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
}
