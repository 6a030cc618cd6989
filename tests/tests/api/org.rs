//! Placeholder: tests of org, being written.
