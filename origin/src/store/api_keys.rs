//! Placeholder: personal API keys in the store, being written.
