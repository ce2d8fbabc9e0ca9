//! The daemon and everything it serves over HTTP on 127.0.0.1:
//!
//! - `daemon`: `octoup-sim serve`, the tick loop and the listeners (one per running node).
//! - `api/`: the REST API of one node (routes, authentication, the endpoint modules).
//! - `feed`: the feed and installer download server, and the shutdown endpoint.
//! - `http`: Octopus error bodies, JSON responses and the request-level faults, for both.
//! - `sqlport`: the simulator's SQL Server port (HTTP/JSON) the container stand-in uses.
//! - `shared`: what every handler shares (the store, the clock, the served versions).

mod api;
mod daemon;
mod feed;
mod http;
mod shared;
mod sqlport;

pub use daemon::serve;
pub(crate) use daemon::serve_container;
pub use feed::{FEED_PATH, SHUTDOWN_PATH};
