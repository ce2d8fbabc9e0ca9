//! The Docker CLI the Docker host drives, through the configured `docker` argv (`[rehearsal] docker`).
//! Secrets reach the container only through the Docker CLI's own environment: `-e NAME`
//! without a value makes the CLI copy `NAME` from its environment, so no secret is ever on
//! a command line (design I5).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Secret;
use crate::process::runner::{CommandOutput, CommandRunner, CommandSpec};

use crate::rehearsal::RehearsalError;

/// Every container and network octoup makes carries this label, so leftovers are found
/// even when the journal could not record a name.
pub(crate) const LABEL: &str = "octoup.rehearsal";

pub(crate) struct Docker {
    pub argv: Vec<String>,
    pub runner: Arc<dyn CommandRunner>,
    pub timeout: Duration,
}

/// What the container is started with.
pub(crate) struct ContainerSpec<'a> {
    pub name: &'a str,
    pub network: &'a str,
    pub image: &'a str,
    pub rehearsal: &'a str,
    /// `--add-host name:ip` (the SQL Server's name, pointed at the relay).
    pub add_host: Option<(String, String)>,
    /// Plain settings (`ACCEPT_EULA=Y`).
    pub settings: Vec<(String, String)>,
    /// Secrets, passed as `-e NAME` with the value in the CLI's environment.
    pub secrets: Vec<(String, Secret)>,
}

impl Docker {
    async fn call(
        &self,
        what: &str,
        args: &[&str],
        env: Vec<(String, Secret)>,
    ) -> Result<CommandOutput, RehearsalError> {
        let mut argv = self.argv.clone();
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut spec =
            CommandSpec::new(what, argv, self.timeout).timeout_setting("[timeouts] command");
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        Ok(self.runner.run(spec).await?)
    }

    async fn checked(&self, what: &str, args: &[&str]) -> Result<String, RehearsalError> {
        let out = self.call(what, args, Vec::new()).await?;
        if !out.success() {
            return Err(RehearsalError::Docker {
                what: what.to_string(),
                detail: format!("exit {}: {}", out.code_text(), out.tail(4)),
            });
        }
        Ok(out.stdout.trim().to_string())
    }

    /// The Docker engine answers (`docker version`), before anything is made.
    pub async fn ping(&self) -> Result<String, RehearsalError> {
        self.checked(
            "ask the Docker engine its version",
            &["version", "--format", "{{.Server.Version}}"],
        )
        .await
    }

    /// A network with no route off the host; returns its gateway address on the host.
    pub async fn create_network(
        &self,
        name: &str,
        rehearsal: &str,
    ) -> Result<String, RehearsalError> {
        let label = format!("{LABEL}={rehearsal}");
        self.checked(
            "create the rehearsal's internal network",
            &["network", "create", "--internal", "--label", &label, name],
        )
        .await?;
        let gateway = self
            .checked(
                "read the rehearsal network's gateway",
                &[
                    "network",
                    "inspect",
                    "--format",
                    "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
                    name,
                ],
            )
            .await?;
        gateway
            .split_whitespace()
            .find(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
            .map(str::to_string)
            .ok_or_else(|| RehearsalError::Docker {
                what: "read the rehearsal network's gateway".into(),
                detail: format!("no IPv4 gateway in {gateway:?}"),
            })
    }

    pub async fn run(&self, c: &ContainerSpec<'_>) -> Result<String, RehearsalError> {
        let label = format!("{LABEL}={}", c.rehearsal);
        let mut args: Vec<String> = vec![
            "run".into(),
            "--detach".into(),
            "--name".into(),
            c.name.into(),
            "--network".into(),
            c.network.into(),
            "--label".into(),
            label,
            // No privileges: Docker-in-Docker stays off (DISABLE_DIND too).
            "--security-opt".into(),
            "no-new-privileges".into(),
        ];
        if let Some((host, ip)) = &c.add_host {
            args.push("--add-host".into());
            args.push(format!("{host}:{ip}"));
        }
        for (k, v) in &c.settings {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        for (k, _) in &c.secrets {
            args.push("--env".into());
            args.push(k.clone());
        }
        args.push(c.image.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .call("start the rehearsal container", &refs, c.secrets.clone())
            .await?;
        if !out.success() {
            return Err(RehearsalError::Docker {
                what: format!("start the rehearsal container from {}", c.image),
                detail: format!("exit {}: {}", out.code_text(), out.tail(4)),
            });
        }
        Ok(out.stdout.trim().to_string())
    }

    /// What exactly ran: the image's registry digest (`name@sha256:…`) when it came from a
    /// registry, else its local id (`sha256:…`).
    pub async fn image_digest(&self, image: &str) -> Option<String> {
        let out = self
            .checked(
                "read the rehearsal image's digest",
                &[
                    "image",
                    "inspect",
                    "--format",
                    "{{range .RepoDigests}}{{.}} {{end}}|{{.Id}}",
                    image,
                ],
            )
            .await
            .ok()?;
        let (digests, id) = out.split_once('|')?;
        digests
            .split_whitespace()
            .next()
            .map(str::to_string)
            .or_else(|| Some(id.trim().to_string()).filter(|i| !i.is_empty()))
    }

    /// The container's address on the network (octoup reaches its API there).
    pub async fn address(&self, container: &str, network: &str) -> Result<String, RehearsalError> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        let ip = self
            .checked(
                "read the rehearsal container's address",
                &["inspect", "--format", &format, container],
            )
            .await?;
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(RehearsalError::Docker {
                what: "read the rehearsal container's address".into(),
                detail: format!("{ip:?} is not an address"),
            });
        }
        Ok(ip)
    }

    /// Whether the container still runs, and its exit code once it stopped.
    pub async fn state(&self, container: &str) -> Result<(bool, Option<i64>), RehearsalError> {
        let s = self
            .checked(
                "read the rehearsal container's state",
                &[
                    "inspect",
                    "--format",
                    "{{.State.Running}} {{.State.ExitCode}}",
                    container,
                ],
            )
            .await?;
        let mut words = s.split_whitespace();
        let running = words.next() == Some("true");
        let code = words.next().and_then(|c| c.parse().ok());
        Ok((running, if running { None } else { code }))
    }

    /// The last lines the server wrote (stdout and stderr).
    pub async fn logs(&self, container: &str, lines: usize) -> String {
        let tail = lines.to_string();
        match self
            .call(
                "read the rehearsal container's log",
                &["logs", "--tail", &tail, container],
                Vec::new(),
            )
            .await
        {
            Ok(out) => {
                let mut text = out.stdout;
                if !out.stderr.trim().is_empty() {
                    text.push_str(&out.stderr);
                }
                text.trim_end().to_string()
            }
            Err(e) => format!("(the log could not be read: {e})"),
        }
    }

    /// Removes the container; one that is already gone is fine. `Ok(true)`: it existed.
    pub async fn remove_container(&self, container: &str) -> Result<bool, RehearsalError> {
        self.remove(
            "container",
            &["rm", "--force", "--volumes", container],
            container,
        )
        .await
    }

    pub async fn remove_network(&self, network: &str) -> Result<bool, RehearsalError> {
        self.remove("network", &["network", "rm", network], network)
            .await
    }

    /// Runs a removal; Docker's "no such …" means it was already gone. A removal the engine
    /// is still busy with (an earlier teardown killed after its `docker rm` was sent: the
    /// engine goes on removing the container, and its network keeps the endpoint until
    /// then) is asked again until it is done, within `BUSY_WAIT`.
    async fn remove(&self, kind: &str, args: &[&str], name: &str) -> Result<bool, RehearsalError> {
        let deadline = std::time::Instant::now() + BUSY_WAIT;
        let out = loop {
            let out = self
                .call(&format!("remove the rehearsal {kind}"), args, Vec::new())
                .await?;
            if out.success() || !busy(&out) || std::time::Instant::now() >= deadline {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        if out.success() {
            return Ok(true);
        }
        if gone(&out) {
            return Ok(false);
        }
        Err(RehearsalError::Docker {
            what: format!("remove the rehearsal {kind} {name}"),
            detail: format!("exit {}: {}", out.code_text(), out.tail(4)),
        })
    }

    /// Containers and networks labelled as a rehearsal's: `(containers, networks)`.
    pub async fn labelled(
        &self,
        rehearsal: &str,
    ) -> Result<(Vec<String>, Vec<String>), RehearsalError> {
        let filter = format!("label={LABEL}={rehearsal}");
        let containers = self
            .checked(
                "list the rehearsal's containers",
                &["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"],
            )
            .await?;
        let networks = self
            .checked(
                "list the rehearsal's networks",
                &[
                    "network",
                    "ls",
                    "--filter",
                    &filter,
                    "--format",
                    "{{.Name}}",
                ],
            )
            .await?;
        let names = |s: String| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok((names(containers), names(networks)))
    }
}

/// How long a teardown waits for a removal the engine is already busy with.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// Docker's answer while it is still removing what was asked for: the container's removal
/// is in progress, or the network still has that container's endpoint.
fn busy(out: &CommandOutput) -> bool {
    let text = format!("{}{}", out.stdout, out.stderr).to_ascii_lowercase();
    text.contains("is already in progress") || text.contains("has active endpoints")
}

/// Docker's "no such container / network" answer.
fn gone(out: &CommandOutput) -> bool {
    let text = format!("{}{}", out.stdout, out.stderr).to_ascii_lowercase();
    text.contains("no such container")
        || text.contains("no such network")
        || text.contains("not found")
}
