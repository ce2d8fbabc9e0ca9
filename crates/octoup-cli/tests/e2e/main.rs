//! End-to-end tests: the built `octoup` upgrades a simulated installation (`octoup-sim`),
//! and each test asserts on the report, the simulator's event history and its invariant
//! checker. One test binary; scenarios run in parallel threads at a tiny time scale.

mod failures;
mod fault_matrix;
mod ha;
mod happy;
mod resume;
mod secrets;
mod support;
