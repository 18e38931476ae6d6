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
