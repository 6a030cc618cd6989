//! Placeholder: the org service, being written.
