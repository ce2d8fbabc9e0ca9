//! Text for people: the library returns data, these render it.

mod check;
mod error;
mod plan;
mod report;

pub use check::check;
pub use error::{api_error, engine_error};
pub use plan::plan;
pub use report::report;
