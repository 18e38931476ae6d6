//! A backend of your own, in one file: records as JSON files in a directory,
//! registered for the `files://` URL scheme, and checked with the same
//! conformance suite the built-in backends pass.
//!
//! ```text
//! cargo run --example custom_backend --features conformance
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use toast::backend::{ConnectUrl, Key, ListEntry, ListQuery, Record};
use toast::{Backend, Error, Reference};
use uuid::Uuid;

/// `files://DIR`: one file per record at `DIR/<hex tenant>/<hex class>/<id>.json`.
/// Hex-encoding the tenant and class keeps any string (`..`, `/`, NUL) harmless.
#[derive(Debug)]
pub struct FileBackend {
    root: PathBuf,
    /// Serializes writers so read-modify-write of `created_at` is safe.
    lock: tokio::sync::Mutex<()>,
}

/// What one file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: String,
    refs: Vec<Reference>,
    schema_version: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn hex(s: &str) -> String {
    let mut out = String::from("h"); // never empty, never "." or ".."
    for b in s.as_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::backend_with(format!("files backend: cannot {what}"), e)
}

impl FileBackend {
    /// A backend rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> toast::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| {
            Error::connection_with(
                format!("files://{}", root.display()),
                format!("cannot create the directory: {e}"),
                e,
            )
        })?;
        Ok(FileBackend {
            root,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn dir(&self, tenant: &str, class: &str) -> PathBuf {
        self.root.join(hex(tenant)).join(hex(class))
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir(&key.tenant, &key.class_name)
            .join(format!("{}.json", key.id))
    }

    fn read(path: &Path) -> toast::Result<Option<Stored>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::validation_with(format!("corrupted record file {}", path.display()), e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read a record", e)),
        }
    }
}

#[async_trait]
impl Backend for FileBackend {
    async fn save(&self, records: &[Record]) -> toast::Result<()> {
        let _writer = self.lock.lock().await;
        for r in records {
            let path = self.path(&r.key);
            let created_at = Self::read(&path)?.map_or(r.created_at, |old| old.created_at);
            let stored = Stored {
                data: r.data_str()?.to_owned(),
                refs: r.refs.clone(),
                schema_version: r.schema_version,
                created_at,
                updated_at: r.updated_at,
            };
            let bytes =
                serde_json::to_vec(&stored).map_err(|e| Error::backend_with("encode", e))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_err("create a directory", e))?;
            }
            // Write then rename: a reader never sees half a file.
            let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4()));
            std::fs::write(&tmp, bytes).map_err(|e| io_err("write a record", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err("rename a record", e))?;
        }
        Ok(())
    }

    async fn load(&self, keys: &[Key]) -> toast::Result<Vec<Record>> {
        let mut out = Vec::new();
        for key in keys {
            if let Some(s) = Self::read(&self.path(key))? {
                out.push(Record {
                    key: key.clone(),
                    data: Bytes::from(s.data),
                    refs: s.refs,
                    schema_version: s.schema_version,
                    created_at: s.created_at,
                    updated_at: s.updated_at,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[Key]) -> toast::Result<u64> {
        let _writer = self.lock.lock().await;
        let mut deleted = 0;
        for key in keys {
            match std::fs::remove_file(self.path(key)) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete a record", e)),
            }
        }
        Ok(deleted)
    }

    async fn list(&self, query: &ListQuery) -> toast::Result<Vec<ListEntry>> {
        let dir = self.dir(&query.tenant, &query.class_name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list records", e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| io_err("list records", e))?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            if let Some(s) = Self::read(&path)? {
                found.push(ListEntry {
                    id,
                    created_at: s.created_at,
                    updated_at: s.updated_at,
                });
            }
        }
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(found.into_iter().skip(offset).take(limit).collect())
    }
}

/// Registers `files://DIR` with toast.
pub fn register() -> toast::Result<()> {
    toast::register_backend("files", |url: ConnectUrl| async move {
        let dir = url.opaque_path().to_owned();
        if dir.is_empty() {
            return Err(Error::validation(
                "files:// needs a directory: files:///tmp/records",
            ));
        }
        Ok(Arc::new(FileBackend::new(dir)?) as Arc<dyn Backend>)
    })
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    #[serde(with = "toast::external")]
    settings: HashMap<String, String>,
}

/// Round-trips a document through the `files://` backend, then runs the
/// conformance suite on it.
pub async fn demo(
    dir: &Path,
) -> Result<toast::backend::conformance::Report, Box<dyn std::error::Error>> {
    register()?;
    let store = toast::Store::connect(&format!("files://{}", dir.display())).await?;
    let profile = Profile {
        name: "ada".into(),
        settings: HashMap::from([("theme".into(), "dark".into())]),
    };
    let json = toast::scope(store.clone(), toast::to_json(&profile)).await??;
    println!("document: {json}");
    let back: Profile = toast::scope(store.clone(), toast::from_json(&json)).await??;
    assert_eq!(back, profile);
    let report = toast::backend::conformance::run(&store).await?;
    println!(
        "conformance: passed {:?}, skipped {:?}",
        report.passed, report.skipped
    );
    Ok(report)
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("toast-files-{}", Uuid::new_v4()));
    let result = demo(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|_| ())
}
