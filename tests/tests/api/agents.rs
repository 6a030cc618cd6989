//! Placeholder: tests of agents, being written.
