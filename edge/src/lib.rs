//! The oxvault edge (placeholder while it is written).
