//! The integration tests of the `octoup` binary, in one test binary (one link): offline
//! commands, upgrades of a simulated installation (`octoup-sim`) asserted on the report,
//! the simulator's history and its invariant checker, the node commands and the SSH
//! transport against a real sshd on loopback, and snapshots of the human output. The
//! harness is `octoup-testkit`; scenarios run in parallel threads at a tiny time scale.

mod ansible;
mod check;
mod doctor_database;
mod doctor_octopus;
mod durability;
mod exit_codes;
mod failures;
mod fault_matrix;
mod furniture;
mod ha;
mod happy;
mod held;
mod hostile;
mod input;
mod interrupts;
mod node_commands;
mod notify;
mod progress;
mod rehearse;
mod rehearse_windows;
mod resume;
mod secrets;
mod snapshots;
mod ssh;
mod sshd;
mod stage;
mod status;
mod step_template;
mod strategies;
mod unattended;
mod verify;
mod window;
