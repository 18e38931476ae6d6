//! [`Error`], [`Result`] and the stable `is_*` predicates.

use std::fmt;

use uuid::Uuid;

/// A boxed error source, as carried by [`Error::Connection`] and [`Error::Backend`].
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible toast operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in toast.
///
/// Match on the variant, or ask the stable predicates [`Error::is_not_found`],
/// [`Error::is_validation`] and [`Error::is_connection`], which keep their
/// meaning when variants are added.
///
/// No variant ever carries a password: URLs are redacted before they are
/// stored in an error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = toast::Store::memory();
/// let missing = toast::Reference::new("String", uuid::Uuid::nil());
/// let err = store.get::<String>(&missing).await.unwrap_err();
/// assert!(err.is_not_found());
/// assert!(err.to_string().contains("String"));
///
/// // Loading a reference as the wrong type is a validation error.
/// let r = store.put(&7u32).await.unwrap();
/// assert!(store.get::<String>(&r).await.unwrap_err().is_validation());
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend is unreachable or refused the connection.
    #[error("{message} (at {url})")]
    Connection {
        /// The URL of the store, with its password replaced by `***`.
        url: String,
        /// What happened and, where known, what to do about it.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// No record exists under this key (in the store's tenant).
    #[error("not found: {class_name} {id} is not in the store (for this tenant)")]
    NotFound {
        /// The class name of the missing record.
        class_name: String,
        /// Its id.
        id: Uuid,
    },
    /// The input is not acceptable: a bad URL, an unknown scheme, a class-name
    /// mismatch, a malformed reference, or stored data that no longer fits the type.
    #[error("{message}")]
    Validation {
        /// What is wrong, naming the offending value.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other storage failure.
    #[error("{message}")]
    Backend {
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Whether the record was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether the input (URL, reference, stored data, class name) was rejected.
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Validation { .. })
    }

    /// Whether the backend could not be reached.
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }

    /// A [`Error::Validation`] with a message.
    pub fn validation(message: impl fmt::Display) -> Self {
        Error::Validation {
            message: message.to_string(),
            source: None,
        }
    }

    /// A [`Error::Validation`] with a message and its cause.
    pub fn validation_with(message: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        Error::Validation {
            message: message.to_string(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Backend`] with a message.
    pub fn backend(message: impl fmt::Display) -> Self {
        Error::Backend {
            message: message.to_string(),
            source: None,
        }
    }

    /// A [`Error::Backend`] with a message and its cause.
    pub fn backend_with(message: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            message: message.to_string(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Connection`]. Pass the URL already redacted
    /// ([`crate::backend::ConnectUrl::redacted`] does that).
    pub fn connection(redacted_url: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Connection {
            url: redacted_url.into(),
            message: message.to_string(),
            source: None,
        }
    }

    /// A [`Error::Connection`] with its cause (the driver's error).
    pub fn connection_with(
        redacted_url: impl Into<String>,
        message: impl fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Connection {
            url: redacted_url.into(),
            message: message.to_string(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::NotFound`].
    pub fn not_found(class_name: impl Into<String>, id: Uuid) -> Self {
        Error::NotFound {
            class_name: class_name.into(),
            id,
        }
    }
}
