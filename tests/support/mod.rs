//! Shared test support: unique names, server URLs, throwaway servers.
#![allow(dead_code)]

pub mod flaky;
pub mod hooked;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod web;

/// A tenant name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The id toast derives from a value's content, computed here independently
/// of the library (its derivation is in src/scope/write.rs): a UUID (version 8) from the first 16 bytes of the
/// SHA-256 hash of the class name, a NUL byte and the stored bytes.
#[allow(dead_code)]
pub fn content_id(class_name: &str, data: &[u8]) -> uuid::Uuid {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(class_name.as_bytes());
    hasher.update([0u8]);
    hasher.update(data);
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Uuid::new_v8(bytes)
}
