//! `node`: the drain flag (optionally waiting for, or canceling, the running tasks) and
//! the task cap.

use std::time::Duration;

use super::args::{Opts, parse_bool, parse_number};
use super::invocation::{Exe, error};
use crate::clock::Clock;
use crate::standins::Output;
use crate::state::StoreError;

impl Exe<'_> {
    pub(super) fn node_cmd(&self, opts: &Opts) -> Result<Output, Output> {
        let drain = opts
            .value("drain")
            .map(|v| parse_bool("drain", v))
            .transpose()?;
        let wait = opts
            .value("wait")
            .map(|v| parse_number("wait", v))
            .transpose()?
            .unwrap_or(0);
        let cancel = opts.flag("cancel-tasks");
        let task_cap = opts
            .value("taskCap")
            .map(|v| parse_number("taskCap", v))
            .transpose()?;
        if (opts.flag("wait") || cancel || opts.flag("cancel-wait")) && drain != Some(true) {
            return Err(error(
                1,
                "The --wait, --cancel-tasks and --cancel-wait options can only be used with --drain=true.",
            ));
        }
        if drain.is_none() && task_cap.is_none() {
            return Err(error(
                1,
                "Nothing to do: specify --drain=true|false and/or --taskCap=N.",
            ));
        }
        self.fault(
            "drain",
            "Timeout expired. The timeout period elapsed prior to obtaining a connection from the pool.",
        )?;
        let node = self.node;
        let mut out = Vec::new();
        self.store.update(|s| {
            if let Some(cap) = task_cap
                && let Some(n) = s.node_mut(node)
            {
                n.max_concurrent_tasks = cap.min(u64::from(u32::MAX)) as u32;
            }
            if let Some(value) = drain {
                s.set_drain(node, value, "cli");
            }
            s.advance_tasks();
            Ok::<_, StoreError>(())
        })?;
        if let Some(cap) = task_cap {
            out.push(format!("Task cap for node {node} set to {cap}."));
        }
        match drain {
            Some(false) => out.push(format!(
                "Node {node} is no longer draining and will pick up tasks."
            )),
            Some(true) => {
                out.push(format!(
                    "Draining node {node}: it will not pick up new tasks."
                ));
                let clock = self.state.clock();
                let deadline = clock.now_sim() + wait as f64;
                let mut running = self.running_tasks()?;
                while running > 0 && clock.now_sim() < deadline {
                    out.push(format!(
                        "Waiting for {running} running task(s) on node {node}..."
                    ));
                    std::thread::sleep(poll_interval(&clock));
                    running = self.running_tasks()?;
                }
                if running > 0 && cancel {
                    let n = self.store.update(|s| {
                        s.advance_tasks();
                        Ok::<_, StoreError>(s.cancel_tasks(Some(node), "cli"))
                    })?;
                    out.push(format!(
                        "Canceled {n} task(s) still running on node {node}."
                    ));
                    running = 0;
                }
                if running > 0 {
                    out.push(format!(
                        "Warning: node {node} is draining but {running} task(s) are still running after waiting {wait} seconds."
                    ));
                } else {
                    out.push(format!("Node {node} is drained."));
                }
            }
            None => {}
        }
        Ok(Output::ok(out.join("\n")))
    }

    fn running_tasks(&self) -> Result<usize, Output> {
        let node = self.node;
        Ok(self.store.update(|s| {
            s.advance_tasks();
            let n = s
                .node(node)
                .map(|n| n.running_tasks(&s.database.tasks))
                .unwrap_or(0);
            Ok::<_, StoreError>(n)
        })?)
    }
}

/// How often waits poll: a simulated second, kept between 5 and 200 real milliseconds.
fn poll_interval(clock: &Clock) -> Duration {
    clock
        .real_duration(1.0)
        .clamp(Duration::from_millis(5), Duration::from_millis(200))
}
