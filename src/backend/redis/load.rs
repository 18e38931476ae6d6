//! Loads: one `MGET` per chunk of keys (a `GET` for one key).

use redis::Value;

use super::errors::unexpected;
use super::RedisBackend;
use crate::backend::support::batch::distinct;
use crate::error::{Error, Result};
use crate::record::{Key, Record};

/// The first this many bytes of values a load receives become records
/// without a copy (slices of the reply's buffers); the rest is copied once.
///
/// The reply's buffers are allocated on the connection's thread. Records
/// that slice them keep that memory in that thread's malloc arena while the
/// memory the caller freed (e.g. after `to_json`) sits unused in its own, so
/// a big load is copied; for a small load the copy costs more than it saves.
pub(super) const ZERO_COPY_BYTES: usize = 4 * 1024 * 1024;

impl RedisBackend {
    pub(super) async fn load_records(&self, keys: &[Key]) -> Result<Vec<Record>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // In the order given (a document's references in document order;
        // see the module docs).
        let keys = distinct(keys);
        let mut heads = self.shared.key_heads();
        let mut records = Vec::with_capacity(keys.len());
        let mut zero_copy_left = ZERO_COPY_BYTES;
        // One MGET per chunk, one after the other, each decoded before the
        // next is sent: the client holds one chunk's reply at a time.
        for chunk in keys.chunks(self.limits.load_chunk_keys.max(1)) {
            let key_len = chunk.first().map_or(0, |k| heads.arg(k).len());
            let mut cmd = redis::Cmd::with_capacity(chunk.len() + 1, 4 + chunk.len() * key_len);
            // One key (a `get`): GET, whose reply is the value alone rather
            // than an array of one.
            cmd.arg(if chunk.len() == 1 { "GET" } else { "MGET" });
            for key in chunk {
                cmd.arg(heads.arg(key));
            }
            let (cmd, single) = (&cmd, chunk.len() == 1);
            let reply: Vec<Value> = self
                .run("load", true, |mut conn| async move {
                    if !single {
                        return cmd.query_async(&mut conn).await;
                    }
                    match cmd.query_async(&mut conn).await {
                        Ok(value) => Ok(vec![value]),
                        // A key of another type (not a record): nil, as
                        // MGET answers for it.
                        Err(e) if e.code() == Some("WRONGTYPE") => Ok(vec![Value::Nil]),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if reply.len() != chunk.len() {
                return Err(Error::backend(format!(
                    "Redis answered MGET of {} keys with {} values",
                    chunk.len(),
                    reply.len()
                )));
            }
            for (key, value) in chunk.iter().zip(reply) {
                match value {
                    Value::Nil => {}
                    Value::BulkString(bytes) => {
                        let zero_copy = bytes.len() <= zero_copy_left;
                        if zero_copy {
                            zero_copy_left -= bytes.len();
                        }
                        records.push(self.shared.decode(key, bytes, zero_copy)?);
                    }
                    other => return Err(unexpected("MGET", &other)),
                }
            }
        }
        Ok(records)
    }
}
