//! Node-level commands (`octoup node ...`) and the SSH transport, against the simulator and
//! a real sshd on loopback.

mod commands;
mod ssh;
mod sshd;
mod support;
