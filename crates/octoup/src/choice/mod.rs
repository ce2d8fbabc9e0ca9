//! Version choice: the version feed, the operator's policy, the upgrade paths Octopus
//! requires, and `check`, which puts them together.

pub mod check;
pub mod feed;
pub mod paths;
pub mod policy;
