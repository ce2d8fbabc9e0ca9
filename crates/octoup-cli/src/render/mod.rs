//! Text for people: the library returns data, these render it.

mod check;
mod plan;
mod report;

pub use check::check;
pub use plan::plan;
pub use report::report;
