
pub mod installer;
