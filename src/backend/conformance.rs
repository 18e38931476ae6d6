//! The checks every backend must pass (work in progress).
