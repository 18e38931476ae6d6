//! Class names: derived from a type's name, or chosen with [`Named`], and
//! the check a reader makes against the name it expects ([`Expected`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use crate::recent::Recent;

/// A type that chooses its own class name instead of the derived one.
///
/// The derived name comes from [`std::any::type_name`] with module paths
/// removed; it changes when the type is renamed. Implement `Named` to pin it,
/// and use [`crate::external::named`].
///
/// # Examples
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Profile { name: String }
/// impl toast::Named for Profile { const CLASS_NAME: &'static str = "UserProfile"; }
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { #[serde(with = "toast::external::named")] profile: Profile }
/// ```
pub trait Named {
    /// The class name written into references and records.
    const CLASS_NAME: &'static str;
}

type Interned = LazyLock<RwLock<HashMap<&'static str, Arc<str>>>>;

/// `type_name` → derived class name.
static CLASS_NAMES: Interned = LazyLock::new(|| RwLock::new(HashMap::new()));
/// `Named::CLASS_NAME` → the same text, shared.
static NAMED: Interned = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The class name toast derives for `T`: its type name without module paths
/// (`my_app::model::Item` → `Item`, `alloc::vec::Vec<my_app::Item>` → `Vec<Item>`).
///
/// # Examples
///
/// ```
/// struct Item;
/// assert_eq!(&*toast::class_name::<Vec<Item>>(), "Vec<Item>");
/// assert_eq!(&*toast::class_name::<Option<String>>(), "Option<String>");
/// ```
pub fn class_name<T: ?Sized>() -> Arc<str> {
    derived_class_name(std::any::type_name::<T>())
}

/// The class name derived from the type name `full`.
fn derived_class_name(full: &'static str) -> Arc<str> {
    recent(full, false).unwrap_or_else(|| {
        let name = intern(&CLASS_NAMES, full, || short_type_name(full));
        remember(full, false, name)
    })
}

/// The class name a reader expects: a type's derived name or a [`Named`]
/// type's own, looked up only where it is needed, so that the usual check
/// (a reference naming it) clones nothing.
#[derive(Clone, Copy)]
pub(crate) struct Expected {
    key: &'static str,
    named: bool,
}

impl Expected {
    /// `T`'s derived class name ([`class_name`]).
    pub(crate) fn of<T: ?Sized>() -> Self {
        Expected {
            key: std::any::type_name::<T>(),
            named: false,
        }
    }

    /// A [`Named`] type's class name.
    pub(crate) fn named(name: &'static str) -> Self {
        Expected {
            key: name,
            named: true,
        }
    }

    /// The name itself.
    pub(crate) fn name(self) -> Arc<str> {
        if self.named {
            static_class_name(self.key)
        } else {
            derived_class_name(self.key)
        }
    }

    /// Whether `class` is the name, answered from this thread's recent names
    /// without a clone; `false` also when the name is not among them (the
    /// caller then compares [`Expected::name`]).
    pub(crate) fn is(self, class: &str) -> bool {
        let wanted = (self.key.as_ptr() as usize, self.key.len(), self.named);
        LAST.try_with(|last| last.borrow().holds(|k| *k == wanted, class))
            .unwrap_or(false)
    }
}

/// An interned class name for a fixed string (for [`Named`] types).
pub(crate) fn static_class_name(name: &'static str) -> Arc<str> {
    recent(name, true).unwrap_or_else(|| {
        let interned = intern(&NAMED, name, || name.to_owned());
        remember(name, true, interned)
    })
}

/// The shared `Arc` for `key` in `table`, made by `make` the first time.
fn intern(table: &Interned, key: &'static str, make: impl FnOnce() -> String) -> Arc<str> {
    if let Ok(map) = table.read() {
        if let Some(found) = map.get(key) {
            return Arc::clone(found);
        }
    }
    let made: Arc<str> = Arc::from(make());
    match table.write() {
        Ok(mut map) => Arc::clone(map.entry(key).or_insert(made)),
        Err(_) => made,
    }
}

/// A class name's key in [`LAST`]: the `&'static str` it was looked up by
/// (address and length: the same address and length are the same text) and
/// which table.
type NameKey = (usize, usize, bool);

thread_local! {
    /// The names this thread looked up last: an external of one type is
    /// serialized or resolved many times in a row, and the shared table
    /// costs a lock and a hash of the full type name each time.
    static LAST: std::cell::RefCell<Recent<NameKey>> =
        const { std::cell::RefCell::new(Recent::new()) };
}

fn recent(key: &'static str, named: bool) -> Option<Arc<str>> {
    let wanted = (key.as_ptr() as usize, key.len(), named);
    LAST.try_with(|last| last.borrow().find(|k| *k == wanted))
        .ok()
        .flatten()
}

/// Remembers `name` for this thread and returns the thread's own copy (or
/// `name` itself where the thread's storage is gone).
fn remember(key: &'static str, named: bool, name: Arc<str>) -> Arc<str> {
    LAST.try_with(|last| {
        last.borrow_mut()
            .keep((key.as_ptr() as usize, key.len(), named), &name)
    })
    .unwrap_or(name)
}

/// Strips module paths from every path segment of a type name.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        let last = segment.rsplit("::").next().unwrap_or_default();
        out.push_str(last);
        segment.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || "_:{}".contains(c) {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// `name` (UTF-8 bytes) as the `last` class name when they are equal, else
/// as a new one that becomes `last`: a run of references of one class shares
/// one text, and only a new one's bytes are checked as UTF-8. `None` when
/// they are not UTF-8.
pub(crate) fn share_class(last: &mut Option<Arc<str>>, name: &[u8]) -> Option<Arc<str>> {
    match last {
        Some(known) if known.as_bytes() == name => Some(Arc::clone(known)),
        _ => Some(Arc::clone(
            last.insert(Arc::from(std::str::from_utf8(name).ok()?)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{class_name, short_type_name, Expected};
    use crate::record::Key;
    use std::sync::Arc;
    use uuid::Uuid;

    #[test]
    fn an_expected_name_is_compared_once_known_and_named_apart_from_derived() {
        struct Fresh;
        struct Other;
        std::thread::spawn(|| {
            let fresh = Expected::of::<Fresh>();
            // Not yet looked up on this thread: unknown, not a match.
            assert!(!fresh.is("Fresh"));
            assert_eq!(&*fresh.name(), "Fresh");
            assert!(fresh.is("Fresh"));
            assert!(!fresh.is("Fres") && !fresh.is("Other"));
            // A named type's name is kept apart from the derived ones.
            let named = Expected::named("Fresh");
            assert!(!named.is("Fresh"));
            assert_eq!(&*named.name(), "Fresh");
            assert!(named.is("Fresh") && fresh.is("Fresh"));
            // Pushed out of the few names a thread keeps: unknown again, and
            // its name is still right.
            let many = [
                Expected::of::<Other>(),
                Expected::of::<Vec<Other>>(),
                Expected::of::<Option<Other>>(),
                Expected::of::<Box<Other>>(),
            ];
            for e in many {
                e.name();
            }
            assert!(!fresh.is("Fresh"));
            assert_eq!(&*fresh.name(), "Fresh");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn each_thread_clones_a_class_name_of_its_own_and_keys_still_match() {
        struct Probe;
        let here = class_name::<Probe>();
        assert!(Arc::ptr_eq(&here, &class_name::<Probe>()), "one per thread");
        let there = std::thread::spawn(class_name::<Probe>)
            .join()
            .expect("the thread ran");
        assert_eq!(*here, *there);
        assert!(!Arc::ptr_eq(&here, &there), "another thread's own copy");
        let id = Uuid::from_u128(7);
        assert_eq!(Key::new("t", here, id), Key::new("t", there, id));
    }

    #[test]
    fn strips_paths_inside_generics() {
        assert_eq!(short_type_name("alloc::vec::Vec<app::Item>"), "Vec<Item>");
        assert_eq!(
            short_type_name("std::collections::hash::map::HashMap<alloc::string::String, u8>"),
            "HashMap<String, u8>"
        );
        assert_eq!(
            short_type_name("(i32, &[core::option::Option<a::B>; 3])"),
            "(i32, &[Option<B>; 3])"
        );
        assert_eq!(short_type_name("u64"), "u64");
        assert_eq!(short_type_name("t::f::{{closure}}::v2::Item"), "Item");
    }
}
