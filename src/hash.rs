//! The hash of toast's in-memory maps.

/// Seeded per process (ids and names come from outside, so their hashes must
/// not be predictable), and cheaper than std's SipHash on one UUID.
pub(crate) type SeededHash = foldhash::fast::RandomState;
