//! The Docker host: the target's image on its own `--internal` network whose only way out
//! is octoup's relay to the SQL Server; the connection string, the master key and a fresh
//! admin API key reach the container through the Docker CLI's environment only (design I5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::docker_cli::{ContainerSpec, Docker};
use super::{Launched, RehearsalHost};
use crate::config::{Config, Secret};
use crate::octopus::api::OctopusApi;
use crate::octopus::http::{HttpClient, NetworkSettings};
use crate::process::runner::CommandRunner;
use crate::rehearsal::endpoint::SqlEndpoint;
use crate::rehearsal::record::{MIGRATIONS, Rehearsal, Rehearsals};
use crate::rehearsal::{Kit, RehearsalError, new_api_key, relay};

pub(in crate::rehearsal) struct DockerHost {
    docker: Docker,
}

impl DockerHost {
    pub fn new(
        config: &Config,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<DockerHost, RehearsalError> {
        if config.rehearsal.docker.is_empty() {
            return Err(RehearsalError::Setup(
                "[rehearsal] docker is empty: give the argv of the Docker CLI".into(),
            ));
        }
        Ok(DockerHost {
            docker: Docker {
                argv: config.rehearsal.docker.clone(),
                runner,
                timeout: Duration::from_secs(config.timeouts.command.max(60)),
            },
        })
    }
}

#[async_trait]
impl RehearsalHost for DockerHost {
    async fn ready(&self, kit: &Kit<'_>, r: &mut Rehearsal) -> Result<String, RehearsalError> {
        let config = &kit.conn.config;
        r.image = config
            .rehearsal
            .image
            .replace("{version}", &r.target.to_string());
        let engine = self.docker.ping().await?;
        let endpoint = SqlEndpoint::from_config(config)?;
        kit.log.redact(&endpoint.password);
        Ok(format!("Docker engine {engine}; image {}", r.image))
    }

    async fn launch(
        &self,
        kit: &Kit<'_>,
        r: &mut Rehearsal,
        book: &Rehearsals,
        master_key: Secret,
    ) -> Result<Option<Launched>, RehearsalError> {
        let config = &kit.conn.config;
        let endpoint = SqlEndpoint::from_config(config)?;
        kit.log.redact(&endpoint.password);
        kit.events
            .phase("start", &format!("{} on an internal network", r.image));
        r.docker_made = true;
        kit.save(r, book)?;
        let gateway = self.docker.create_network(&r.network, &r.id).await?;
        let gateway_ip: std::net::IpAddr = gateway.parse().map_err(|_| RehearsalError::Docker {
            what: "read the rehearsal network's gateway".into(),
            detail: format!("{gateway:?} is not an address"),
        })?;
        let upstream = format!("{}:{}", endpoint.host, endpoint.port);
        let relay = relay::Relay::start(gateway_ip, upstream.clone())
            .await
            .map_err(|e| {
                RehearsalError::Setup(format!(
                    "cannot listen on the rehearsal network's gateway {gateway}: {e}"
                ))
            })?;
        kit.events.note(&format!(
            "the container's only way out: {} → {upstream}",
            relay.addr
        ));
        let (host_in_container, add_host) = if endpoint.is_name() {
            (
                endpoint.host.clone(),
                Some((endpoint.host.clone(), gateway.clone())),
            )
        } else {
            (gateway.clone(), None)
        };
        let connection = endpoint.connection_string(
            &host_in_container,
            relay.addr.port(),
            &r.scratch_database,
            &config.rehearsal.connection_options,
        );
        kit.log.redact(&connection);
        let api_key = new_api_key();
        kit.log.redact(&api_key);
        let started = Instant::now();
        self.docker
            .run(&ContainerSpec {
                name: &r.container,
                network: &r.network,
                image: &r.image,
                rehearsal: &r.id,
                add_host,
                settings: vec![
                    ("ACCEPT_EULA".into(), "Y".into()),
                    ("DISABLE_DIND".into(), "Y".into()),
                    ("OCTOPUS_SERVER_NODE_NAME".into(), "octoup-rehearsal".into()),
                ],
                secrets: vec![
                    ("DB_CONNECTION_STRING".into(), connection),
                    ("MASTER_KEY".into(), master_key),
                    ("ADMIN_API_KEY".into(), api_key.clone()),
                ],
            })
            .await?;
        r.image_digest = self.docker.image_digest(&r.image).await;
        kit.save(r, book)?;
        let ip = self.docker.address(&r.container, &r.network).await?;
        let api = OctopusApi::new(
            // The container is on a host-local bridge that never leaves this machine: plain
            // HTTP, and never through a configured proxy.
            HttpClient::new(NetworkSettings {
                allow_plain_http: true,
                ..NetworkSettings::default()
            })
            .map_err(|e| RehearsalError::Setup(e.to_string()))?,
            &format!("http://{ip}:8080"),
            api_key,
            Duration::from_secs(config.timeouts.http),
        );
        // The server upgrades its schema at start, as the vendor's Linux container does:
        // the migrations and the start are one measured phase.
        Ok(Some(Launched {
            api,
            phase: MIGRATIONS,
            started,
            keep: Some(Box::new(relay)),
        }))
    }

    async fn stopped(&self, r: &Rehearsal) -> Result<Option<Option<i64>>, RehearsalError> {
        let (running, code) = self.docker.state(&r.container).await?;
        Ok((!running).then_some(code))
    }

    async fn logs(&self, r: &Rehearsal) -> String {
        self.docker.logs(&r.container, 40).await
    }

    async fn teardown(&self, r: &Rehearsal, actions: &mut Vec<String>) -> bool {
        if !r.docker_made {
            return true;
        }
        let mut ok = true;
        let (mut containers, mut networks) = (vec![r.container.clone()], vec![r.network.clone()]);
        if let Ok((c, n)) = self.docker.labelled(&r.id).await {
            containers.extend(c);
            networks.extend(n);
        }
        containers.dedup();
        networks.dedup();
        for c in &containers {
            match self.docker.remove_container(c).await {
                Ok(true) => actions.push(format!("removed the container {c}")),
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    actions.push(format!("could not remove the container {c}: {e}"));
                }
            }
        }
        for n in &networks {
            match self.docker.remove_network(n).await {
                Ok(true) => actions.push(format!("removed the network {n}")),
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    actions.push(format!("could not remove the network {n}: {e}"));
                }
            }
        }
        ok
    }
}
