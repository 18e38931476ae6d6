//! [`External<T>`]: a stored value with a stable identity.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::class_name::{class_name, Expected};
use crate::external::{read_external, write_external};
use crate::reference::Reference;

/// A value stored out of line under an id of its own.
///
/// It gets a random UUID the first time it is serialized and keeps it:
/// serializing it again after a change updates the same record (its
/// `created_at` is kept, its `updated_at` moves). A value deserialized from a
/// reference keeps the id it was loaded from. Use it as a field type with no
/// `#[serde(with)]` attribute.
///
/// Equality compares the values only, not the ids.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// use toast::External;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Account { owner: String, profile: External<Vec<String>> }
///
/// let store = toast::Store::memory();
/// let mut account = Account { owner: "ada".into(), profile: External::new(vec!["math".into()]) };
/// assert!(account.profile.id().is_none());
///
/// let first = toast::scope(store.clone(), toast::to_json(&account)).await??;
/// let id = account.profile.id().expect("assigned on first serialization");
///
/// account.profile.push("engines".into());          // DerefMut to the value
/// let second = toast::scope(store.clone(), toast::to_json(&account)).await??;
/// assert_eq!(first, second);                        // same id, record updated
///
/// let back: Account = toast::scope(store, toast::from_json(&second)).await??;
/// assert_eq!(back.profile.id(), Some(id));
/// assert_eq!(*back.profile, ["math", "engines"]);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct External<T> {
    value: T,
    id: OnceLock<Uuid>,
}

impl<T> External<T> {
    /// A value with no id yet (it gets one when first serialized).
    pub fn new(value: T) -> Self {
        External {
            value,
            id: OnceLock::new(),
        }
    }

    /// A value with a given id, e.g. one taken from a URL.
    pub fn with_id(value: T, id: Uuid) -> Self {
        External {
            value,
            id: OnceLock::from(id),
        }
    }

    /// Its id, once it has one.
    pub fn id(&self) -> Option<Uuid> {
        self.id.get().copied()
    }

    /// Its reference, once it has an id.
    pub fn reference(&self) -> Option<Reference> {
        self.id().map(|id| Reference::new(&*class_name::<T>(), id))
    }

    /// The value, without its identity.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for External<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for External<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> From<T> for External<T> {
    fn from(value: T) -> Self {
        External::new(value)
    }
}

impl<T: Clone> Clone for External<T> {
    fn clone(&self) -> Self {
        External {
            value: self.value.clone(),
            id: self.id.clone(),
        }
    }
}

impl<T: PartialEq> PartialEq for External<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: fmt::Debug> fmt::Debug for External<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("External")
            .field("id", &self.id())
            .field("value", &self.value)
            .finish()
    }
}

impl<T: Serialize> Serialize for External<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let id = *self.id.get_or_init(Uuid::new_v4);
        write_external(&self.value, class_name::<T>(), Some(id), serializer)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for External<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (value, id) = read_external::<T, D>(deserializer, Expected::of::<T>())?;
        Ok(External::with_id(value, id))
    }
}
