//! Text for people: the library returns data, these render it.

mod check;
mod doctor;
mod error;
mod plan;
mod report;
mod status;

pub use check::check;
pub use doctor::{doctor, findings, verification, verify};
pub use error::{api_error, engine_error};
pub use plan::{plan, resume_plan};
pub use report::report;
pub use status::{runs, runs_json, status, status_json};
