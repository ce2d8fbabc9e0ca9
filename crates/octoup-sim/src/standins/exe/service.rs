//! `service --start|--stop|--restart` (waiting, like the real service, until the node's
//! port opens or closes) and `watchdog --create|--delete`.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::args::{Opts, parse_number};
use super::invocation::{Exe, error};
use crate::history::Event;
use crate::standins::Output;
use crate::state::{ServiceState, StoreError, Watchdog};

impl Exe<'_> {
    pub(super) fn service(&self, opts: &Opts) -> Result<Output, Output> {
        let actions: Vec<&str> = [
            "start",
            "stop",
            "restart",
            "install",
            "reconfigure",
            "uninstall",
        ]
        .into_iter()
        .filter(|a| opts.flag(a))
        .collect();
        match actions.as_slice() {
            ["start"] => self.start(),
            ["stop"] => self.stop(),
            ["restart"] => {
                let stopped = self.stop()?;
                let started = self.start()?;
                Ok(Output::ok(format!(
                    "{}\n{}",
                    stopped.stdout, started.stdout
                )))
            }
            [other] => Err(error(
                1,
                format!(
                    "service --{other} is not simulated by octoup-sim (the Windows service is always installed)."
                ),
            )),
            _ => Err(error(
                1,
                "Specify exactly one of --start, --stop, --restart, --install, --reconfigure or --uninstall.",
            )),
        }
    }

    fn stop(&self) -> Result<Output, Output> {
        self.fault(
            "service-stop",
            "Service 'OctopusDeploy' could not be stopped: The service did not respond to the start or control request in a timely fashion.",
        )?;
        let node = self.node;
        let previous = self.store.update(|s| {
            let Some(n) = s.node(node) else {
                return Ok::<_, StoreError>(ServiceState::Stopped);
            };
            let previous = n.service;
            if previous != ServiceState::Stopped {
                s.move_service(node, ServiceState::Stopping, "cli");
            }
            Ok(previous)
        })?;
        if previous == ServiceState::Stopped {
            return Ok(Output::ok("Service OctopusDeploy is not running."));
        }
        self.state.clock().sleep_sim(self.state.durations.stop);
        let (daemon, port) = self.store.update(|s| {
            s.advance_tasks();
            s.kill_tasks(node);
            s.move_service(node, ServiceState::Stopped, "cli");
            let port = s.node(node).map(|n| n.api_port).unwrap_or(0);
            Ok::<_, StoreError>((s.daemon.is_some(), port))
        })?;
        // Like the real service, the stop is over when the node no longer listens.
        if daemon && !wait_for_port_closed(port, Duration::from_secs(20)) {
            return Err(error(
                1,
                format!(
                    "Service 'OctopusDeploy' stopped but port {port} still accepts connections."
                ),
            ));
        }
        Ok(Output::ok(
            "Stopping service: OctopusDeploy\nService stopped.",
        ))
    }

    fn start(&self) -> Result<Output, Output> {
        self.fault(
            "service-start",
            "Service 'OctopusDeploy' could not be started: The service did not respond to the start or control request in a timely fashion.",
        )?;
        let node = self.node;
        let previous = self.store.update(|s| {
            let Some(n) = s.node(node) else {
                return Ok::<_, StoreError>(ServiceState::Running);
            };
            let previous = n.service;
            if previous == ServiceState::Stopped {
                s.move_service(node, ServiceState::Starting, "cli");
            }
            Ok(previous)
        })?;
        if previous != ServiceState::Stopped {
            return Ok(Output::ok("Service OctopusDeploy is already running."));
        }
        self.state.clock().sleep_sim(self.state.durations.start);
        let outcome = self.store.update(|s| {
            let started = s.finish_start(node, "cli");
            s.advance_tasks();
            let port = s.node(node).map(|n| n.api_port).unwrap_or(0);
            Ok::<_, StoreError>(started.map(|()| (s.daemon.is_some(), port)))
        })?;
        let (daemon, port) = outcome.map_err(|reason| error(100, reason))?;
        if daemon && !wait_for_port(port, Duration::from_secs(20)) {
            return Err(error(
                1,
                format!(
                    "Service 'OctopusDeploy' started but the web portal at http://127.0.0.1:{port}/ did not answer within 20 seconds. Check the server log."
                ),
            ));
        }
        Ok(Output::ok(
            "Starting service: OctopusDeploy\nService started.",
        ))
    }

    pub(super) fn watchdog(&self, opts: &Opts) -> Result<Output, Output> {
        let create = opts.flag("create");
        if create == opts.flag("delete") {
            return Err(error(1, "Specify either --create or --delete."));
        }
        let interval = opts
            .value("interval")
            .map(|v| parse_number("interval", v))
            .transpose()?
            .unwrap_or(5)
            .clamp(1, 1440) as u32;
        let instances = opts.value("instances").unwrap_or("*").to_string();
        self.fault(
            "watchdog",
            "Access is denied. Creating or deleting a scheduled task requires an elevated prompt.",
        )?;
        let node = self.node;
        let message = self.store.update(|s| {
            let Some(n) = s.node_mut(node) else {
                return Ok::<_, StoreError>(String::new());
            };
            if create {
                n.watchdog = Some(Watchdog {
                    interval_minutes: interval,
                    instances: instances.clone(),
                });
                s.record(Event::WatchdogCreated {
                    node: node.to_string(),
                    interval_minutes: interval,
                });
                Ok(format!(
                    "Created scheduled task 'Octopus Watchdog OctopusServer' to run every {interval} minutes for instances {instances}."
                ))
            } else if n.watchdog.take().is_some() {
                s.record(Event::WatchdogDeleted {
                    node: node.to_string(),
                });
                Ok("Deleted scheduled task 'Octopus Watchdog OctopusServer'.".to_string())
            } else {
                Ok("Scheduled task 'Octopus Watchdog OctopusServer' does not exist; nothing to delete.".to_string())
            }
        })?;
        Ok(Output::ok(message))
    }
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more.
fn wait_for_port_closed(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
