//! Placeholder: the agents service, being written.
