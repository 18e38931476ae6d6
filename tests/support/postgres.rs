//! Throwaway PostgreSQL servers and the shared server URL (see issue 3).
