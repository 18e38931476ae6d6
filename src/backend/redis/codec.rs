//! The layout of a stored value: a fixed 26-byte header, the references,
//! then the data (see the [module docs](super#values)).

use std::ops::Range;

use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use redis::{RedisWrite, ToRedisArgs};
use uuid::Uuid;

use crate::backend::support::{corrupted, corrupted_with, Reference};
use crate::error::{Error, Result};
use crate::record::{Key, Record};

/// The first byte of every stored value. 0xF7 never starts UTF-8 text, so no
/// JSON or other text written by someone else is mistaken for a record.
pub(super) const MAGIC: u8 = 0xF7;

/// The second byte of every stored value: the layout described in the
/// [module docs](super#values).
pub(super) const LAYOUT_VERSION: u8 = 1;

/// The length of the fixed part of the header (before the refs).
pub(super) const HEADER_LEN: usize = 26;

/// Offsets of the header fields (see the [module docs](super#values)).
const OFF_SCHEMA_VERSION: usize = 2;
const OFF_CREATED_AT: usize = 6;
const OFF_UPDATED_AT: usize = 14;
pub(super) const OFF_REFS_LEN: usize = 22;

/// The fixed part of a stored value's header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) schema_version: u32,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) refs_len: u32,
}

pub(super) fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

fn be_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// Parses the fixed header at the start of `value` (which may be just the
/// header, as `GETRANGE` returns it). The error says what is wrong.
pub(super) fn parse_header(value: &[u8]) -> std::result::Result<Header, String> {
    match value {
        [] => return Err("the value is empty".to_owned()),
        [first, ..] if *first != MAGIC => {
            return Err(format!(
                "the value does not start with toast's magic byte 0x{MAGIC:02X} (found 0x{first:02X}), \
                 so it is not a toast record of this layout"
            ))
        }
        [_, version, ..] if *version != LAYOUT_VERSION => {
            return Err(format!(
                "unknown layout version {version} (this release reads {LAYOUT_VERSION})"
            ))
        }
        _ => {}
    }
    let short = || {
        format!(
            "the value is {} bytes, shorter than the {HEADER_LEN}-byte header",
            value.len()
        )
    };
    let schema_version = be_u32(value, OFF_SCHEMA_VERSION).ok_or_else(short)?;
    let created = be_i64(value, OFF_CREATED_AT).ok_or_else(short)?;
    let updated = be_i64(value, OFF_UPDATED_AT).ok_or_else(short)?;
    let refs_len = be_u32(value, OFF_REFS_LEN).ok_or_else(short)?;
    // Every i64 of nanoseconds is an instant chrono can hold. A record never
    // updated has both the same (its calendar date is worked out once).
    let created_at = DateTime::from_timestamp_nanos(created);
    let updated_at = if updated == created {
        created_at
    } else {
        DateTime::from_timestamp_nanos(updated)
    };
    Ok(Header {
        schema_version,
        created_at,
        updated_at,
        refs_len,
    })
}

/// Parses a whole stored value: its header, and where its refs and data lie.
fn parse_value(value: &[u8]) -> std::result::Result<(Header, Range<usize>), String> {
    let header = parse_header(value)?;
    let refs_end = usize::try_from(header.refs_len)
        .ok()
        .and_then(|n| HEADER_LEN.checked_add(n))
        .filter(|end| *end <= value.len())
        .ok_or_else(|| {
            format!(
                "its refs length {} runs past the end of the {}-byte value",
                header.refs_len,
                value.len()
            )
        })?;
    Ok((header, HEADER_LEN..refs_end))
}

/// A record encoded for Redis: the header and refs (small, owned) and the
/// data (borrowed), written into the command as one argument without an
/// intermediate copy of the data.
pub(super) struct Encoded<'a> {
    pub(super) head: [u8; HEADER_LEN],
    pub(super) refs: Vec<u8>,
    pub(super) data: &'a [u8],
}

impl Encoded<'_> {
    pub(super) fn len(&self) -> usize {
        HEADER_LEN + self.refs.len() + self.data.len()
    }
}

fn nanos(t: &DateTime<Utc>, name: &str, key: &Key) -> Result<i64> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        Error::validation(format!(
            "record {} {}: {name} {t} cannot be stored in Redis (nanoseconds since 1970 must \
             fit in an i64: years 1677 to 2262)",
            key.class_name, key.id
        ))
    })
}

pub(super) fn encode(record: &Record) -> Result<Encoded<'_>> {
    let refs = if record.refs.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&record.refs)
            .map_err(|e| Error::validation_with("cannot encode a record's references", e))?
    };
    let refs_len = u32::try_from(refs.len()).map_err(|_| {
        Error::validation(format!(
            "record {} {}: its reference list is larger than 4 GiB",
            record.key.class_name, record.key.id
        ))
    })?;
    let created = nanos(&record.created_at, "created_at", &record.key)?;
    let updated = nanos(&record.updated_at, "updated_at", &record.key)?;
    let mut head = [0u8; HEADER_LEN];
    head[0] = MAGIC;
    head[1] = LAYOUT_VERSION;
    head[OFF_SCHEMA_VERSION..OFF_CREATED_AT].copy_from_slice(&record.schema_version.to_be_bytes());
    head[OFF_CREATED_AT..OFF_UPDATED_AT].copy_from_slice(&created.to_be_bytes());
    head[OFF_UPDATED_AT..OFF_REFS_LEN].copy_from_slice(&updated.to_be_bytes());
    head[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&refs_len.to_be_bytes());
    Ok(Encoded {
        head,
        refs,
        data: record.data.as_ref(),
    })
}

/// Writing into a command buffer cannot fail; the `io::Result` is moot.
pub(super) fn put(w: &mut impl std::io::Write, bytes: &[u8]) {
    let _ = w.write_all(bytes);
}

impl ToRedisArgs for &Encoded<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        let mut w = out.writer_for_next_arg();
        put(&mut w, &self.head);
        put(&mut w, &self.refs);
        put(&mut w, self.data);
    }
}

/// A stored record that cannot be read back, naming its Redis key.
pub(super) fn corrupted_at(class_name: &str, id: Uuid, redis_key: &str, what: &str) -> Error {
    corrupted(
        class_name,
        Some(id),
        format!("{what} (Redis key {redis_key})"),
    )
}

/// Decodes one stored value (see the module docs), taking its bytes. With
/// `zero_copy` the record's data is a slice of them; without, a copy (see
/// `ZERO_COPY_BYTES` for why both). `redis_key` names the key in errors.
pub(super) fn decode(
    key: &Key,
    value: Vec<u8>,
    zero_copy: bool,
    redis_key: &dyn Fn() -> String,
) -> Result<Record> {
    let (header, refs) = parse_value(&value)
        .map_err(|what| corrupted_at(&key.class_name, key.id, &redis_key(), &what))?;
    let data_start = refs.end;
    let refs = match value.get(refs) {
        None | Some([]) => Vec::new(),
        Some(text) => serde_json::from_slice::<Vec<Reference>>(text).map_err(|e| {
            corrupted_with(
                &key.class_name,
                Some(key.id),
                format!(
                    "its reference list is not a JSON list of {{\"class_name\",\"id\"}} \
                     (Redis key {})",
                    redis_key()
                ),
                e,
            )
        })?,
    };
    let data = if zero_copy {
        // Advanced, not sliced: a slice would make the buffer shared (an
        // allocation and two atomic operations per record) before anyone
        // shares it.
        let mut data = Bytes::from(value);
        data.advance(data_start.min(data.len()));
        data
    } else {
        Bytes::copy_from_slice(value.get(data_start..).unwrap_or_default())
    };
    Ok(Record {
        key: key.clone(),
        data,
        refs,
        schema_version: header.schema_version,
        created_at: header.created_at,
        updated_at: header.updated_at,
    })
}
