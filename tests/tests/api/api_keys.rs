//! Placeholder: tests of api_keys, being written.
