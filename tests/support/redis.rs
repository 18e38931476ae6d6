//! Throwaway Redis servers and the shared server URL (see issue 4).
