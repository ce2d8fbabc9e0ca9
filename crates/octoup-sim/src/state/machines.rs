//! The host, the server's own checks, spaces and machines (deployment targets and workers),
//! and the tasks that act on them: the System Integrity Check, the vendor's Tentacle
//! `Upgrade`, and the recurring-triggers task that sticks in the queue after an upgrade.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::model::{State, TaskState};
use crate::spec::Spec;

/// What the host and the server's checks report (from the spec's `[server]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `OSVersion` of `/api/serverstatus/system-info`.
    pub os_version: String,
    pub integrity_errors: Vec<String>,
    pub integrity_errors_after_upgrade: Vec<String>,
    /// The schema the installation was created with: another schema means "upgraded".
    pub original_schema: String,
    pub tentacle_version: String,
    pub stuck_triggers_after_upgrade: bool,
    pub early_access_program: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// `Spaces-N`.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `Machines-N` for a deployment target, `Workers-N` for a worker.
    pub id: String,
    pub name: String,
    pub space_id: String,
    /// `target` or `worker`.
    pub role: String,
    pub os: String,
    pub os_version: String,
    pub tentacle_version: String,
    pub calamari_current: bool,
    /// `ok`, `fails` or `reports-success-but-fails`.
    pub upgrade: String,
}

impl Machine {
    pub(crate) fn is_worker(&self) -> bool {
        self.role == "worker"
    }
}

/// How long the stuck recurring-triggers task has been queued when it appears: it was
/// queued before the outage and never picked up.
const STUCK_FOR: SignedDuration = SignedDuration::from_hours(1);
/// Simulated seconds the System Integrity Check and a Tentacle upgrade take.
const INTEGRITY_SECONDS: f64 = 5.0;
const UPGRADE_SECONDS: f64 = 20.0;

impl State {
    /// Copies the spec's `[server]`, license term and `[[machines]]` into a new state.
    pub(super) fn furnish(&mut self, spec: &Spec) {
        let s = &spec.server;
        self.server = ServerInfo {
            os_version: s.os_version.clone(),
            integrity_errors: s.integrity_errors.clone(),
            integrity_errors_after_upgrade: s
                .integrity_errors_after_upgrade
                .clone()
                .unwrap_or_else(|| s.integrity_errors.clone()),
            original_schema: spec.version.clone(),
            tentacle_version: s.tentacle_version.clone(),
            stuck_triggers_after_upgrade: s.stuck_triggers_after_upgrade,
            early_access_program: s.early_access_program,
        };
        let license = &mut self.database.license;
        license.expires = spec.license.expires.clone().unwrap_or_else(|| {
            jiff::Zoned::now()
                .date()
                .checked_add(jiff::Span::new().years(1))
                .map(|d| d.to_string())
                .unwrap_or_default()
        });
        license.node_limit = spec.license.node_limit.unwrap_or(spec.nodes);
        license.xml = license.xml.replace(
            &format!("<NodeLimit>{}</NodeLimit>", spec.nodes),
            &format!("<NodeLimit>{}</NodeLimit>", license.node_limit),
        );
        self.spaces = vec![Space {
            id: "Spaces-1".into(),
            name: "Default".into(),
        }];
        let (mut targets, mut workers) = (0, 0);
        for m in &spec.machines {
            let space_id = match self.spaces.iter().find(|x| x.name == m.space) {
                Some(x) => x.id.clone(),
                None => {
                    let id = format!("Spaces-{}", self.spaces.len() + 1);
                    self.spaces.push(Space {
                        id: id.clone(),
                        name: m.space.clone(),
                    });
                    id
                }
            };
            let id = if m.role == "worker" {
                workers += 1;
                format!("Workers-{workers}")
            } else {
                targets += 1;
                format!("Machines-{targets}")
            };
            self.machines.push(Machine {
                id,
                name: m.name.clone(),
                space_id,
                role: m.role.clone(),
                os: m.os.clone(),
                os_version: m.os_version.clone(),
                tentacle_version: m.tentacle_version.clone(),
                calamari_current: m.calamari_current,
                upgrade: m.upgrade.clone(),
            });
        }
    }

    /// What the System Integrity Check finds now (before or after the schema upgrade).
    pub(crate) fn integrity_errors(&self) -> &[String] {
        if self.database.schema_version == self.server.original_schema {
            &self.server.integrity_errors
        } else {
            &self.server.integrity_errors_after_upgrade
        }
    }

    /// Queues the System Integrity Check; it fails when the schema has drifted.
    pub(crate) fn queue_integrity_check(&mut self, description: &str) -> String {
        let errors = self.integrity_errors().to_vec();
        let id = self.queue_task("SystemIntegrityCheck", description, INTEGRITY_SECONDS, None);
        if let Some(t) = self.task_mut(&id)
            && !errors.is_empty()
        {
            t.fails_with = Some(format!(
                "The System Integrity Check found {} problem(s): {}",
                errors.len(),
                errors.join("; ")
            ));
        }
        id
    }

    /// Queues the vendor's Tentacle `Upgrade` of `machine_ids` in `space_id`. A machine
    /// whose upgrade `fails` makes the task fail when it finishes.
    pub(crate) fn queue_tentacle_upgrade(
        &mut self,
        space_id: &str,
        description: &str,
        machine_ids: Vec<String>,
    ) -> String {
        let id = self.queue_task("Upgrade", description, UPGRADE_SECONDS, None);
        let failing: Vec<String> = self
            .machines
            .iter()
            .filter(|m| machine_ids.contains(&m.id) && m.upgrade == "fails")
            .map(|m| m.name.clone())
            .collect();
        if let Some(t) = self.task_mut(&id) {
            t.machine_ids = machine_ids;
            t.space_id = Some(space_id.to_string());
            if !failing.is_empty() {
                t.fails_with = Some(format!(
                    "The Tentacle upgrade failed on {}: the installer exited with code 1603.",
                    failing.join(", ")
                ));
            }
        }
        id
    }

    /// After a task finished: a successful or failed `Upgrade` moves the machines whose
    /// installer worked to the bundled Tentacle (and Calamari) version.
    pub(super) fn task_finished(&mut self, id: &str) {
        let Some(task) = self.database.tasks.iter().find(|t| t.id == id) else {
            return;
        };
        if task.name != "Upgrade" || task.state == TaskState::Canceled {
            return;
        }
        let ids = task.machine_ids.clone();
        let bundled = self.server.tentacle_version.clone();
        for m in self.machines.iter_mut().filter(|m| ids.contains(&m.id)) {
            if m.upgrade == "ok" {
                m.tentacle_version = bundled.clone();
                m.calamari_current = true;
            }
        }
    }

    /// After the schema upgrade: the stuck recurring-triggers task, when the spec asks.
    pub(crate) fn after_schema_upgrade(&mut self) {
        if !self.server.stuck_triggers_after_upgrade {
            return;
        }
        let id = self.queue_task(
            "RecurringScheduledDeployments",
            "Process recurring scheduled triggers",
            1.0,
            None,
        );
        if let Some(t) = self.task_mut(&id) {
            t.stuck = true;
            t.queue_time = t
                .queue_time
                .saturating_sub(STUCK_FOR)
                .unwrap_or(t.queue_time);
        }
    }

    fn task_mut(&mut self, id: &str) -> Option<&mut super::model::Task> {
        self.database.tasks.iter_mut().find(|t| t.id == id)
    }

    pub(crate) fn space(&self, id_or_name: &str) -> Option<&Space> {
        self.spaces
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id_or_name) || s.name == id_or_name)
    }

    /// Whether the bundled Tentacle is newer than the machine's.
    pub(crate) fn needs_tentacle_upgrade(&self, m: &Machine) -> bool {
        crate::version::compare(&m.tentacle_version, &self.server.tentacle_version).is_lt()
    }
}
