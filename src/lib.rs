//! # serde-toast
//!
//! The claim-check pattern, and PostgreSQL's TOAST idea, for serde. A field
//! marked `#[serde(with = "toast::external")]` is stored out of line while the
//! document is serialized, and the document carries only
//! `{"class_name": "...", "id": "<uuid>"}` in its place; deserializing resolves
//! it back.
//!
//! The store is not written on the type: it comes from a task-scoped context,
//! [`scope`], so the same type can live in SQLite in a CLI, in Redis in one
//! service and in PostgreSQL in another, and externals nest freely inside API
//! payloads, queue messages and caches.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Item { sku: String, text: String }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     order_id: u64,
//!     #[serde(with = "toast::external")]
//!     items: Vec<Item>,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> toast::Result<()> {
//! let store = toast::Store::memory(); // or Store::connect("sqlite://app.db").await?
//! let order = Order {
//!     order_id: 7,
//!     items: vec![Item { sku: "A-1".into(), text: "a long description".repeat(50) }],
//! };
//!
//! // Serialize: the items are stored, the document keeps a reference.
//! let json = toast::scope(store.clone(), toast::to_json(&order)).await??;
//! assert!(json.starts_with(r#"{"order_id":7,"items":{"class_name":"Vec<Item>","id":""#));
//!
//! // Deserialize: the reference is resolved (one round trip per nesting level).
//! let back: Order = toast::scope(store.clone(), toast::from_json(&json)).await??;
//! assert_eq!(back, order);
//! assert_eq!(store.stats().save_calls, 1);
//! assert_eq!(store.stats().load_calls, 1);
//! # Ok(()) }
//! ```
//!
//! ## The invariant
//!
//! No reference leaves the library before the value it names is stored:
//! [`to_json`], [`to_vec`] and [`to_value`] return only after the flush, and
//! [`scope`] returns a failed flush as its error.
//!
//! ## The public surface
//!
//! What an application calls:
//!
//! | item | what it is |
//! | --- | --- |
//! | [`external`], [`external::option`], [`external::named`] | the field adapters |
//! | [`External`] | a stored value with an id of its own |
//! | [`Store`], [`Stats`] | a connected store seen as one tenant, and its counters |
//! | [`scope`], [`flush`], [`current`], [`Context`] | the task's scope: buffer, cache, carried to spawned tasks |
//! | [`to_json`], [`to_vec`], [`to_value`] | serialize, then flush |
//! | [`from_json`], [`from_slice`], [`from_value`] | prefetch, then deserialize |
//! | [`load`], [`load_many`], [`prefetch`], [`collect_references`], [`take_error`] | the same pieces for other formats and plain serde calls |
//! | [`Reference`], [`class_name`], [`Named`] | the stand-in a document carries, and the names in it |
//! | [`Error`], [`Result`] | one error type, asked with `is_not_found`, `is_validation`, `is_connection` |
//! | [`blocking`] | the same without async |
//! | `tower` (feature `tower`) | per-request scopes for tower and axum |
//!
//! What a backend writer needs lives under [`backend`]: the [`Backend`]
//! trait (also here), [`backend::Record`], [`backend::Key`],
//! [`backend::ConnectUrl`], the built-in backends and, with the feature
//! `conformance`, the checks every backend must pass. [`register_backend`]
//! and [`registered_schemes`] name backends by URL scheme.
//!
//! ## Cargo features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `sqlite` | yes | `sqlite://PATH`, embedded and persistent |
//! | `tower` | yes | `toast::tower`, a per-request scope layer |
//! | `postgres` | no | `postgres://` / `postgresql://` |
//! | `redis` | no | `redis://` (`redis-tls` adds `rediss://`) |
//! | `conformance` | no | `backend::conformance`, the checks every backend must pass |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod blocking;
mod class_name;
mod conn;
mod error;
pub mod external;
mod hash;
mod identity;
mod json;
mod recent;
mod record;
mod reference;
mod refs;
mod registry;
mod scope;
mod store;
#[cfg(feature = "tower")]
pub mod tower;
mod url;

pub use backend::Backend;
pub use class_name::{class_name, Named};
pub use conn::Stats;
pub use error::{Error, Result};
pub use identity::External;
pub use json::{
    from_json, from_slice, from_value, load, load_many, prefetch, to_json, to_value, to_vec,
};
pub use reference::Reference;
pub use refs::walk::collect_references;
pub use registry::{register_backend, registered_schemes};
pub use scope::parked::take_error;
pub use scope::{current, flush, Context};
pub use store::{scope, Store};
