//! Talking to Octopus: the HTTP client (URL policy, proxies, redaction) and the REST API.

pub mod api;
pub mod http;
