//! One run of `Octopus.Server.exe` on a node: where it runs, the state it started from,
//! and how it fails.

use crate::standins::{Output, apply_fault};
use crate::state::{State, Store};

pub(super) fn error(code: i32, message: impl AsRef<str>) -> Output {
    Output::fail(code, format!("Error: {}", message.as_ref()))
}

pub(super) struct Exe<'a> {
    pub store: &'a Store,
    pub node: &'a str,
    /// The state when the command started.
    pub state: State,
}

impl Exe<'_> {
    /// Applies a fault for `op`; `exit:N` fails with `message`.
    pub fn fault(&self, op: &str, message: &str) -> Result<(), Output> {
        match apply_fault(self.store, op, Some(self.node))? {
            Some(code) => Err(error(code, message)),
            None => Ok(()),
        }
    }

    pub fn binary(&self) -> String {
        self.state
            .node(self.node)
            .map(|n| n.version().to_string())
            .unwrap_or_default()
    }
}
