//! Saves and deletes: a pipeline of `SET … NX` per chunk, then the update
//! script for the keys that were taken (see the [module docs](super#round-trips)).

use redis::Value;

use super::codec::{encode, Encoded};
use super::errors::unexpected;
use super::keys::KeyHeads;
use super::RedisBackend;
use crate::backend::support::batch::{self, distinct};
use crate::error::{Error, Result};
use crate::record::{Key, Record};

/// `SET key value NX [PX ttl_ms]`: stores a new record, or leaves a taken
/// key as it is (an update then goes through the update script).
fn set_new<'a>(
    heads: &mut KeyHeads<'a>,
    record: &'a Record,
    value: &Encoded<'_>,
    ttl_ms: u64,
) -> redis::Cmd {
    let key = heads.arg(&record.key);
    // Sized up front: the buffer never grows while the data is copied in.
    let mut cmd = redis::Cmd::with_capacity(6, key.len() + value.len() + 32);
    cmd.arg("SET").arg(key).arg(value).arg("NX");
    if ttl_ms > 0 {
        cmd.arg("PX").arg(ttl_ms);
    }
    cmd
}

impl RedisBackend {
    fn ttl_ms(&self) -> u64 {
        self.ttl.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        })
    }

    /// One chunk of a save: the `SET … NX` pipeline, then the update script
    /// for the keys it found taken.
    async fn save_chunk(&self, records: &[(&Record, Encoded<'_>)]) -> Result<()> {
        let ttl_ms = self.ttl_ms();
        let mut heads = self.shared.key_heads();
        let replies: Vec<Value> = if let [(record, value)] = records {
            // One record (a `put`): the command alone, as a pipeline of one
            // costs the client a second reply vector and its bookkeeping.
            let cmd = &set_new(&mut heads, record, value, ttl_ms);
            let reply = self
                .run("save", true, |mut conn| async move {
                    cmd.query_async(&mut conn).await
                })
                .await?;
            vec![reply]
        } else {
            let mut pipe = redis::Pipeline::with_capacity(records.len());
            for (record, value) in records {
                pipe.add_command(set_new(&mut heads, record, value, ttl_ms));
            }
            let pipe = &pipe;
            self.run("save", true, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?
        };
        if replies.len() != records.len() {
            return Err(Error::backend(format!(
                "Redis answered {} replies to a pipeline of {} SET commands",
                replies.len(),
                records.len()
            )));
        }
        // The records whose keys were taken (usually none: new ids).
        let mut taken = Vec::new();
        for (record, reply) in records.iter().zip(&replies) {
            match reply {
                Value::Okay => {}
                Value::Nil => taken.push(record),
                other => return Err(unexpected("SET … NX", other)),
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let mut invocation = self.shared.update.prepare_invoke();
        invocation.arg(ttl_ms);
        for (record, value) in taken {
            invocation.key(heads.arg(&record.key)).arg(value);
        }
        let invocation = &invocation;
        self.run("save (update)", true, |mut conn| async move {
            invocation.invoke_async::<i64>(&mut conn).await
        })
        .await?;
        Ok(())
    }

    pub(super) async fn save_records(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Sent in the order given (a flush's: the order its values were
        // serialized in; see the module docs), so of two records with the
        // same key the later one is written last and wins. Every record is
        // encoded (and checked) before anything is sent.
        let encoded = records
            .iter()
            .map(|r| Ok((r, encode(r)?)))
            .collect::<Result<Vec<_>>>()?;
        let chunks = batch::chunks(
            &encoded,
            |(_, value)| value.len(),
            self.limits.save_chunk_bytes,
            self.limits.save_chunk_records,
        );
        for chunk in chunks {
            self.save_chunk(chunk).await?;
        }
        Ok(())
    }

    pub(super) async fn delete_records(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("DEL");
        let mut heads = self.shared.key_heads();
        for key in distinct(keys) {
            cmd.arg(heads.arg(key));
        }
        let cmd = &cmd;
        self.run("delete", false, |mut conn| async move {
            cmd.query_async::<u64>(&mut conn).await
        })
        .await
    }
}
