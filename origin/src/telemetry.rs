//! Structured JSON logs on stdout, filtered by `OXVAULT_LOG` (tracing `EnvFilter` syntax,
//! default `info`). One JSON object per line, with the request span's fields flattened in.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let (filter, rejected) = match std::env::var("OXVAULT_LOG") {
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(_) => (EnvFilter::new("info"), Some(text)),
        },
        Err(_) => (EnvFilter::new("info"), None),
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .init();
    if let Some(text) = rejected {
        tracing::warn!(OXVAULT_LOG = %text, "OXVAULT_LOG is not a valid filter; logging at info");
    }
}
