pub mod config;
pub mod version;
pub mod fsutil;
pub mod http;
pub mod progress;
pub mod feed;
