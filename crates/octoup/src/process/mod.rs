//! Effects seams: running external programs (argv templates, timeouts, the run log),
//! the clock, file-system helpers and the one platform module.

pub mod clock;
pub mod fsutil;
pub mod platform;
pub mod runner;
