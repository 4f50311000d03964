//! The shared-memory bus of the event engine.
