//! Typed errors carried across serde.
//!
//! serde only lets an adapter fail with the format's own error, made from a
//! message. An external that fails parks its `toast::Error` in the scope and
//! hands serde the message; whoever gets the serde error back
//! ([`crate::to_json`], [`crate::from_json`], `toast::Error::from`) takes the
//! parked error whose message the serde error carries, so the caller sees the
//! original error, not a string.

use super::state::Parked;
use super::{current, Context};
use crate::error::Error;

/// Takes the typed error behind the last serde error raised by an external in
/// this scope, if it has not been taken yet.
///
/// [`crate::to_json`] and [`crate::from_json`] do this for you, and so does
/// `toast::Error::from(serde_json::Error)`; call it after a plain serde call
/// in another format.
pub fn take_error() -> Option<Error> {
    current().and_then(|ctx| ctx.lock().parked.take().map(|p| p.error))
}

/// Parks `error` in the current context (if any) and returns its message.
pub(crate) fn park(error: Error) -> String {
    match current() {
        Some(ctx) => ctx.park(error),
        None => error.to_string(),
    }
}

/// The parked error whose message `serde_message` carries, if any.
pub(crate) fn take_parked_matching(serde_message: &str) -> Option<Error> {
    current().and_then(|ctx| ctx.take_parked_matching(serde_message))
}

impl Context {
    /// Parks `error` here and returns its message.
    pub(crate) fn park(&self, error: Error) -> String {
        let message = error.to_string();
        self.lock().parked = Some(Parked {
            message: message.clone(),
            error,
        });
        message
    }

    /// The parked error whose message `serde_message` carries, if any.
    pub(crate) fn take_parked_matching(&self, serde_message: &str) -> Option<Error> {
        let mut st = self.lock();
        match &st.parked {
            Some(p) if serde_message.contains(&p.message) => st.parked.take().map(|p| p.error),
            _ => None,
        }
    }

    /// Forgets a parked error (before a new document is read or written).
    pub(crate) fn clear_parked(&self) {
        self.lock().parked = None;
    }

    /// The typed error behind a serde error met in this scope, else `other`
    /// of the serde error.
    pub(crate) fn recover(
        &self,
        e: serde_json::Error,
        other: impl FnOnce(serde_json::Error) -> Error,
    ) -> Error {
        self.take_parked_matching(&e.to_string())
            .unwrap_or_else(|| other(e))
    }
}

/// Turns a serde error met inside a scope back into the `toast::Error` that caused
/// it, when there is one (see [`take_error`]); otherwise a
/// [`Error::Validation`] carrying the serde error.
///
/// This lets `?` recover typed errors in code that calls `serde_json` directly
/// inside [`crate::scope`].
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        match take_parked_matching(&e.to_string()) {
            Some(parked) => parked,
            None if e.is_io() => Error::backend_with("I/O error while (de)serializing", e),
            None => Error::validation_with(format!("invalid document: {e}"), e),
        }
    }
}
