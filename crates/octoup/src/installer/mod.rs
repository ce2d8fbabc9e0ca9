//! Installer delivery: download (resumable, hashed while received) → verify (pins,
//! headers, sidecars, a verify command) → cache (keyed by version and digest).

pub mod cache;
pub mod download;
pub mod verify;
