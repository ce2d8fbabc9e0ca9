//! Progress reporting seam: the library says what is happening, the binary decides how to
//! show it (a bar on a terminal, periodic lines in a log, nothing in JSON mode).

/// Receives progress of one long operation at a time (a download, a backup…).
/// Implementations must be cheap: `advance` is called for every received chunk.
pub trait Progress: Send + Sync {
    /// A (re)start: `total` bytes if known, `done` already there (a resumed download).
    fn start(&self, label: &str, total: Option<u64>, done: u64);
    /// `bytes` more were done.
    fn advance(&self, bytes: u64);
    /// The operation ended (successfully or not); `message` says how.
    fn finish(&self, message: &str);
    /// A notable event worth a line of its own (a retry, a resume, a cache hit).
    fn message(&self, message: &str);
}

/// Shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: &str) {}
    fn message(&self, _: &str) {}
}
