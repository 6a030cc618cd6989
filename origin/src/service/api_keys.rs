//! Placeholder: the api_keys service, being written.
