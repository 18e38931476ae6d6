//! Batch helpers the built-in storage backends share.

#[cfg(any(feature = "postgres", feature = "redis"))]
use std::collections::HashSet;
use std::ops::Range;

#[cfg(any(feature = "postgres", feature = "redis"))]
use uuid::Uuid;

#[cfg(any(feature = "postgres", feature = "redis"))]
use crate::record::Key;

/// Splits consecutive items of the given sizes into ranges of at most
/// `max_items` items and at most `max_bytes` bytes; an item bigger than
/// `max_bytes` gets a range of its own.
pub(crate) fn chunk_ranges(
    sizes: impl IntoIterator<Item = usize>,
    max_bytes: usize,
    max_items: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes, mut i) = (0, 0usize, 0);
    for size in sizes {
        if i > start && (i - start >= max_items || bytes.saturating_add(size) > max_bytes) {
            ranges.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        i += 1;
    }
    if i > start {
        ranges.push(start..i);
    }
    ranges
}

/// `items` in slices by [`chunk_ranges`], `size` giving an item's bytes.
pub(crate) fn chunks<T>(
    items: &[T],
    size: impl Fn(&T) -> usize,
    max_bytes: usize,
    max_items: usize,
) -> Vec<&[T]> {
    chunk_ranges(items.iter().map(size), max_bytes, max_items)
        .into_iter()
        .map(|r| &items[r])
        .collect()
}

/// The distinct keys among `keys`, in their order. Keys from toast's
/// prefetch are already distinct: one pass over the ids (16 bytes each)
/// shows that, and only a batch with a repeated id pays for comparing
/// whole keys.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn distinct(keys: &[Key]) -> Vec<&Key> {
    // A few keys (a `Store::get`): compared pairwise, no set allocated.
    if keys.len() <= 8 {
        let mut out: Vec<&Key> = Vec::with_capacity(keys.len());
        for key in keys {
            if !out.contains(&key) {
                out.push(key);
            }
        }
        return out;
    }
    let hasher = super::SeededHash::default;
    let mut ids: HashSet<Uuid, _> = HashSet::with_capacity_and_hasher(keys.len(), hasher());
    if keys.iter().all(|k| ids.insert(k.id)) {
        return keys.iter().collect();
    }
    let mut seen: HashSet<&Key, _> = HashSet::with_capacity_and_hasher(keys.len(), hasher());
    keys.iter().filter(|k| seen.insert(*k)).collect()
}
