//! Per-request scopes for tower / axum (work in progress).
