//! `octoup rehearse`: the target version run against a disarmed copy of production, before
//! the window, to learn how long the migrations take on this data, whether a data-dependent
//! migration fails, and whether the upgraded schema passes the integrity check.
//!
//! It never touches the production database's contents, the production nodes or
//! maintenance mode. The flow (docs/rehearsal.md):
//! 1. the copy: a fresh COPY_ONLY backup (verified), or a recent verified one reused,
//!    restored under a scratch name with every file moved (`[rehearsal] data_dir`); on Azure
//!    SQL Database `AS COPY OF`;
//! 2. the copy disarmed with the vendor's statements, and read back ([`disarm`]);
//! 3. the rehearsal host ([`host`]) runs the target against the copy: the Docker host on an
//!    `--internal` network whose only way out is octoup's relay to the SQL Server
//!    ([`relay`]), every secret through the container's environment only; or a spare
//!    Windows node (opt-in: the master key on `Octopus.Server.exe`'s command line there);
//! 4. the migrations are timed until `/api` reports the target; then the checks that follow
//!    every upgrade (System Integrity Check, versions, stuck triggers, the queue) run
//!    against the rehearsal server;
//! 5. teardown always: what the host made, the scratch database. A rehearsal that was
//!    killed is torn down by the next one, or by `octoup rehearse --cleanup`.
//!
//! Measured figures feed `octoup plan` and `upgrade` ([`newest_go`]).

mod disarm;
mod endpoint;
mod host;
pub mod record;
mod relay;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use record::{BackupMedia, BackupUsed, Rehearsals};
pub use record::{Phase, Rehearsal, RehearsalStatus, Teardown, newest_go};

use crate::config::{
    Config, ConfigError, DatabaseConfig, DatabaseStrategy, EnvOverrides, IntegrityCheck,
    RehearsalHost, Secret,
};
use crate::database::{Choice, DatabaseError, DatabaseSide, Hosting, RollbackPoint};
use crate::doctor::finding::{Finding, Findings, Severity};
use crate::doctor::preflight::{Connection, PreflightError};
use crate::journal::{JournalError, StateDir, new_run_id};
use crate::octopus::api::OctopusApi;
use crate::process::runner::{RunError, RunLog};
use crate::version::Version;

#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Lock(#[from] JournalError),
    #[error("the rehearsal copy: {0}")]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot write the rehearsal journal {path}: {detail}. Check [state] dir")]
    Journal { path: PathBuf, detail: String },
    #[error(
        "Docker: cannot {what}: {detail}. Check [rehearsal] docker and that the Docker engine runs (`docker version`)"
    )]
    Docker { what: String, detail: String },
    #[error("rehearsal: {0}")]
    Setup(String),
    #[error("stopped by Ctrl-C")]
    Interrupted,
}

impl RehearsalError {
    /// The operator's input is wrong (config, `--to`): nothing was made.
    pub fn is_config(&self) -> bool {
        match self {
            RehearsalError::Config(_) | RehearsalError::Setup(_) => true,
            RehearsalError::Preflight(e) => e.is_config(),
            _ => false,
        }
    }

    pub fn is_locked(&self) -> bool {
        matches!(self, RehearsalError::Lock(JournalError::Locked { .. }))
    }
}

/// What the rehearsal tells the person watching (the CLI prints it).
pub trait RehearsalEvents: Send + Sync {
    /// A phase begins.
    fn phase(&self, _name: &str, _detail: &str) {}
    fn finished(&self, _phase: &Phase) {}
    fn note(&self, _text: &str) {}
    /// The percentage of a long statement (backup, restore, copy).
    fn percent(&self, _percent: u32) {}
    /// Asked often: `true` stops the rehearsal, which then tears down (Ctrl-C).
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Shows nothing.
pub struct Quiet;
impl RehearsalEvents for Quiet {}

#[derive(Debug, Clone, Default)]
pub struct RehearseOptions {
    pub to: Option<String>,
    /// Only tear down what interrupted rehearsals left.
    pub cleanup: bool,
}

/// What `octoup rehearse` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Rehearsed(Box<Rehearsal>),
    /// `--cleanup`: the rehearsals whose leftovers were torn down now.
    Cleaned {
        cleaned: Vec<Rehearsal>,
    },
}

/// Every rehearsal recorded in the state directory, oldest first (for `octoup plan`).
pub fn recorded(config: &Config) -> Vec<Rehearsal> {
    Rehearsals::new(&config.state.dir).all().unwrap_or_default()
}

/// `octoup rehearse`.
pub async fn rehearse(
    config: Config,
    env: &EnvOverrides,
    options: RehearseOptions,
    events: Arc<dyn RehearsalEvents>,
) -> Result<Outcome, RehearsalError> {
    let to = options
        .to
        .as_deref()
        .map(|t| {
            t.parse::<Version>()
                .map_err(|source| PreflightError::BadTo {
                    to: t.to_string(),
                    source,
                })
        })
        .transpose()?;
    let state = StateDir::new(&config.state.dir);
    // The same lock as an upgrade: a rehearsal and an upgrade never overlap.
    let _lock = state.lock()?;
    let id = new_run_id();
    let log_path = state.log_path(&format!("rehearsal-{id}"));
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let log = Arc::new(
        RunLog::open(&log_path).map_err(|e| RehearsalError::Journal {
            path: log_path.clone(),
            detail: e.to_string(),
        })?,
    );
    let conn = Connection::new(config, env, log.clone())?;
    let kit = Kit::new(&conn, log.clone(), events.clone())?;
    let book = Rehearsals::new(&conn.config.state.dir);
    let cleaned = kit.clean_leftovers(&book).await?;
    if options.cleanup {
        return Ok(Outcome::Cleaned { cleaned });
    }

    let (from, target, production_id) = kit.choose(to).await?;
    let mut r = Rehearsal::new(&id, from, target, &conn.config.rehearsal.database_prefix);
    r.host = conn.config.rehearsal.host;
    // Refused (the Windows host without its opt-in) before anything is made or journaled.
    let host = kit.host(r.host)?;
    host.refused(&kit)?;
    book.save(&mut r)?;
    events.note(&format!(
        "rehearsal {id}: {} → {} on a copy of {}; the run log is {}",
        r.from,
        r.target,
        conn.config.database.name,
        log_path.display()
    ));

    let outcome = {
        let work = kit.work(&mut r, &book, host, production_id);
        tokio::pin!(work);
        let stop = async {
            loop {
                if events.stop_requested() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            done = &mut work => done,
            () = stop => Err(RehearsalError::Interrupted),
        }
    };
    match outcome {
        Ok(()) => {
            if r.reasons.is_empty() {
                r.status = RehearsalStatus::Go;
            } else {
                r.status = RehearsalStatus::NoGo;
            }
        }
        Err(RehearsalError::Interrupted) => {
            r.status = RehearsalStatus::Interrupted;
            r.error = Some("stopped by Ctrl-C before a verdict".into());
        }
        Err(e) => {
            // Not a verdict on the upgrade: the rehearsal itself could not be carried out.
            r.status = RehearsalStatus::Failed;
            r.error = Some(log.scrub(&e.to_string()));
        }
    }
    book.save(&mut r)?;
    kit.teardown(&mut r, &book).await;
    Ok(Outcome::Rehearsed(Box::new(r)))
}

/// What one rehearsal works with.
struct Kit<'a> {
    conn: &'a Connection,
    log: Arc<RunLog>,
    events: Arc<dyn RehearsalEvents>,
    side: DatabaseSide,
    /// `[rehearsal.sql]`: the SQL Server the copy is restored on, when it is not production's.
    copy_server: Option<DatabaseSide>,
    docker: host::DockerHost,
    windows: Option<host::WindowsHost>,
}

impl<'a> Kit<'a> {
    fn new(
        conn: &'a Connection,
        log: Arc<RunLog>,
        events: Arc<dyn RehearsalEvents>,
    ) -> Result<Kit<'a>, RehearsalError> {
        let config = &conn.config;
        let choice = Choice::native("rehearsal", config.database.compression.unwrap_or(false));
        let side = DatabaseSide::new(config, &choice)?;
        let copy_server = side.rehearsal_server(config)?;
        let docker = host::DockerHost::new(config, conn.runner.clone())?;
        let windows = host::WindowsHost::new(conn)?;
        Ok(Kit {
            conn,
            log,
            events,
            side,
            copy_server,
            docker,
            windows,
        })
    }

    /// The rehearsal host of that kind.
    fn host(&self, kind: RehearsalHost) -> Result<&dyn host::RehearsalHost, RehearsalError> {
        match kind {
            RehearsalHost::Docker => Ok(&self.docker),
            RehearsalHost::Windows => self
                .windows
                .as_ref()
                .map(|w| w as &dyn host::RehearsalHost)
                .ok_or_else(|| {
                    RehearsalError::Setup(
                        "[rehearsal] host = \"windows\" needs [rehearsal.windows.node]: name the spare Windows node".into(),
                    )
                }),
        }
    }

    /// The version the installation serves, the target (`--to`, else the policy's), and
    /// the production installation id (the copy must not keep it).
    async fn choose(
        &self,
        to: Option<Version>,
    ) -> Result<(Version, Version, Option<String>), RehearsalError> {
        let api = &self.conn.api;
        let root = api.root().await.map_err(PreflightError::from)?;
        let status = api.server_status().await.map_err(PreflightError::from)?;
        let from: Version = root.version.parse().map_err(|e| {
            RehearsalError::Setup(format!(
                "the server's /api Version {:?} is not a version ({e})",
                root.version
            ))
        })?;
        let license_max = status
            .maximum_available_version_covered_by_license
            .as_deref()
            .and_then(|v| v.parse().ok());
        let mut findings = Findings::default();
        let choice = crate::doctor::preflight::choose_target(
            self.conn,
            &from,
            license_max,
            to,
            &mut findings,
        )
        .await?;
        if let Some(f) = findings.iter().find(|f| f.severity == Severity::Blocker) {
            return Err(RehearsalError::Setup(format!("{} ({})", f.found, f.fix)));
        }
        let Some(target) = choice.target else {
            return Err(RehearsalError::Setup(format!(
                "nothing to rehearse: {}. Pass --to VERSION to rehearse a given release",
                choice.why
            )));
        };
        Ok((
            from,
            target,
            Some(root.installation_id.clone()).filter(|i| !i.is_empty()),
        ))
    }

    fn save(&self, r: &mut Rehearsal, book: &Rehearsals) -> Result<(), RehearsalError> {
        book.save(r)
    }

    fn finish(
        &self,
        r: &mut Rehearsal,
        book: &Rehearsals,
        name: &str,
        started: Instant,
        detail: String,
    ) -> Result<(), RehearsalError> {
        let phase = Phase {
            name: name.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            detail: self.log.scrub(&detail),
        };
        self.events.finished(&phase);
        r.phases.retain(|p| p.name != name);
        r.phases.push(phase);
        self.save(r, book)
    }

    /// Forwards a statement's STATS percentage to the person watching.
    fn percent(&self) -> Option<crate::database::Percent> {
        let events = self.events.clone();
        Some(Arc::new(move |p| events.percent(p)))
    }

    async fn work(
        &self,
        r: &mut Rehearsal,
        book: &Rehearsals,
        host: &dyn host::RehearsalHost,
        production_id: Option<String>,
    ) -> Result<(), RehearsalError> {
        let config = &self.conn.config;
        let runner = self.conn.runner.as_ref();
        // Everything that can be refused is asked before the copy is made.
        let ready = host.ready(self, r).await?;
        self.events.note(&ready);
        let master_key = self.master_key().await?;
        self.log.redact(&master_key);
        let (hosting, compression) = self.side.server_kind(runner).await?;
        let hosting = crate::database::detect::refine(&self.side.sql, runner, hosting).await;
        let mut side = self.side.clone();
        side.tuning.compression = config.database.compression.unwrap_or(compression);

        // 1. The copy.
        let use_database = match hosting {
            Some(Hosting::AzureSqlDatabase) => {
                r.copy_method = "copy".into();
                r.hosting = hosting;
                self.events.phase(
                    "copy",
                    &format!("CREATE DATABASE {} AS COPY OF", r.scratch_database),
                );
                r.scratch_made = true;
                self.save(r, book)?;
                let t = Instant::now();
                side.copy_as(runner, &r.scratch_database, self.percent())
                    .await?;
                self.finish(
                    r,
                    book,
                    "copy",
                    t,
                    format!("{} is online", r.scratch_database),
                )?;
                false
            }
            Some(Hosting::GoogleCloudSql) => {
                return Err(RehearsalError::Setup(
                    "a rehearsal copy on Google Cloud SQL is not supported: its login has no sysadmin or dbcreator, so octoup cannot BACKUP or RESTORE by T-SQL there. Make the copy with the documented route, `gcloud sql export bak INSTANCE gs://BUCKET/octopus.bak --database=<database>` then `gcloud sql import bak INSTANCE gs://BUCKET/octopus.bak --database=<copy>` (cloud.google.com/sql/docs/sqlserver/import-export), or restore that .bak on a self-managed SQL Server and rehearse there".into(),
                ));
            }
            other => {
                let copy = CopyBy::for_hosting(other, &config.database)?;
                copy.apply(&mut side, other);
                if let Some(token) = &side.sas_token {
                    // It reaches sqlcmd only through the environment; never a log line either.
                    self.log.redact(token);
                }
                r.copy_method = copy.method.into();
                r.hosting = other;
                if self.copy_server.is_some() && copy.media != BackupMedia::Disk {
                    return Err(RehearsalError::Setup(format!(
                        "[rehearsal.sql] restores a disk backup that production's server wrote to a share, and production is on {}, which writes none: remove [rehearsal.sql] to make the copy on production's server",
                        other.map(Hosting::name).unwrap_or("this hosting")
                    )));
                }
                let point = self.backup(&side, r, book, copy).await?;
                // On a rehearsal SQL Server the backup is read from its view of the share.
                let (point, restorer) = match &self.copy_server {
                    Some(server) => {
                        r.sql_server = self.copy_server_name();
                        (point.seen_from(&server.backup_dir), server)
                    }
                    None => (point, &side),
                };
                let data_dir = config
                    .rehearsal
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| restorer.backup_dir.clone());
                let detail = match copy.media {
                    BackupMedia::Disk => format!(
                        "as {} under {}{}",
                        r.scratch_database,
                        data_dir.display(),
                        r.sql_server
                            .as_deref()
                            .map(|s| format!(" on the rehearsal SQL Server {s}"))
                            .unwrap_or_default()
                    ),
                    BackupMedia::Url => format!(
                        "as {} FROM URL (Managed Instance places the files)",
                        r.scratch_database
                    ),
                    BackupMedia::S3 => {
                        format!("as {} by rds_restore_database", r.scratch_database)
                    }
                };
                self.events.phase("restore", &detail);
                r.scratch_made = true;
                self.save(r, book)?;
                let t = Instant::now();
                let done = restorer
                    .restore_as(
                        runner,
                        &point,
                        &r.scratch_database,
                        &data_dir,
                        self.percent(),
                    )
                    .await?;
                self.finish(r, book, "restore", t, done)?;
                true
            }
        };

        // 2. Disarmed before any Octopus process sees it.
        self.events
            .phase("disarm", "the vendor's statements for a cloned instance");
        let t = Instant::now();
        let sql = match (&self.copy_server, use_database) {
            (Some(server), true) => server.sql.clone(),
            (None, true) => side.sql.clone(),
            (_, false) => side.sql_in(&r.scratch_database),
        };
        sql.run(
            runner,
            "disarm the rehearsal copy",
            disarm::statements(&r.scratch_database, use_database),
        )
        .await?;
        let out = sql
            .run_with(
                runner,
                "check the rehearsal copy is disarmed",
                crate::database::sqlcmd_output::OPTIONS,
                disarm::check(&r.scratch_database, use_database),
            )
            .await?;
        let found = disarm::read(&out.stdout, production_id.as_deref()).map_err(|e| {
            RehearsalError::Setup(format!(
                "the copy's disarmed state could not be read back ({e}); it was not started"
            ))
        })?;
        if !found.armed.is_empty() {
            return Err(RehearsalError::Setup(format!(
                "the copy is still armed after the disarming statements: {}; it was not started",
                found.armed.join(", ")
            )));
        }
        self.finish(
            r,
            book,
            "disarm",
            t,
            format!(
                "no node registrations; subscriptions, triggers, targets and workers disabled; installation id {}",
                found.installation_id.as_deref().unwrap_or("(none)")
            ),
        )?;

        // 3. The rehearsal server, on the host, with no route to production.
        let Some(launched) = host.launch(self, r, book, master_key).await? else {
            // The reasons, the error and the excerpt are set.
            return Ok(());
        };

        // 4. Timed until /api reports the target.
        let served = self.wait_served(r, host, &launched.api).await?;
        let Some(served) = served else {
            // The reasons and the log excerpt are set.
            self.finish(r, book, launched.phase, launched.started, "failed".into())?;
            return Ok(());
        };
        self.finish(
            r,
            book,
            launched.phase,
            launched.started,
            format!("/api reports {served}"),
        )?;
        let api = &launched.api;

        self.events.phase(
            "checks",
            "System Integrity Check, versions, stuck triggers, the queue",
        );
        let t = Instant::now();
        let mut checked = (**config).clone();
        // On a rehearsal a failed integrity check is the answer: no-go.
        if checked.doctor.integrity_check != IntegrityCheck::Off {
            checked.doctor.integrity_check = IntegrityCheck::Blocker;
        }
        let findings = crate::doctor::verify::after_upgrade(api, &checked, &r.target).await;
        for f in findings.iter().filter(|f| f.severity == Severity::Blocker) {
            r.reasons.push(format!("{}: {}", f.id, f.found));
        }
        let summary = format!(
            "{} finding(s), {} blocker(s)",
            findings.0.len(),
            findings
                .iter()
                .filter(|f| f.severity == Severity::Blocker)
                .count()
        );
        r.findings = findings;
        self.finish(r, book, "checks", t, summary)?;
        // The Docker host's relay lives until the checks are done.
        drop(launched.keep);
        Ok(())
    }

    /// A fresh verified backup (COPY_ONLY but on RDS), or a recent verified one of the same
    /// media reused.
    async fn backup(
        &self,
        side: &DatabaseSide,
        r: &mut Rehearsal,
        book: &Rehearsals,
        copy: CopyBy,
    ) -> Result<RollbackPoint, RehearsalError> {
        let config = &self.conn.config;
        let runner = self.conn.runner.as_ref();
        let hours = config.rehearsal.reuse_backup_hours;
        if hours > 0 {
            let fresh_after = jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_hours(hours as i64))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let reusable = book.all()?.into_iter().rev().find_map(|old| {
                let b = old.backup?;
                (b.verified
                    && b.media == copy.media
                    && b.schema == r.from
                    && b.taken > fresh_after
                    && b.reused_from.is_none())
                .then_some((old.id, b))
            });
            if let Some((from_id, b)) = reusable {
                self.events.note(&format!(
                    "reusing the verified backup of rehearsal {from_id} ({}, taken {}; [rehearsal] reuse_backup_hours = {hours})",
                    b.files.join(", "),
                    b.taken
                ));
                let point = b.point();
                r.backup = Some(BackupUsed {
                    reused_from: Some(from_id),
                    ..b
                });
                self.save(r, book)?;
                return Ok(point);
            }
        }
        self.events.phase("backup", copy.backup);
        let t = Instant::now();
        let stamp = format!("rehearsal-{}", r.id);
        let point = side.backup(runner, &r.from, &stamp, self.percent()).await?;
        let Some(used) = BackupUsed::taken(&point, &r.from) else {
            return Err(RehearsalError::Setup(format!(
                "{} is not a backup a copy can be restored from",
                point.describe()
            )));
        };
        r.backup = Some(used);
        self.finish(r, book, "backup", t, point.describe())?;
        self.events.phase("verify", copy.verify);
        let t = Instant::now();
        let said = side.verify(runner, &point).await?;
        if let Some(b) = r.backup.as_mut() {
            b.verified = true;
        }
        self.finish(r, book, "verify", t, said)?;
        Ok(point)
    }

    /// Polls the rehearsal server until `/api` reports the target. `None`: it stopped or
    /// ran out of time (the reasons and the log excerpt say which).
    async fn wait_served(
        &self,
        r: &mut Rehearsal,
        host: &dyn host::RehearsalHost,
        api: &OctopusApi,
    ) -> Result<Option<Version>, RehearsalError> {
        let (limit, setting) = host.start_limit(&self.conn.config);
        let deadline = Instant::now() + limit;
        let mut pause = Duration::from_millis(100);
        loop {
            let answer = api.root().await;
            if let Err(e) = &answer
                && e.is_config()
            {
                return Err(RehearsalError::Setup(format!(
                    "the rehearsal server's API cannot be asked: {e}"
                )));
            }
            if let Ok(root) = answer
                && let Ok(v) = root.version.parse::<Version>()
            {
                if v == r.target {
                    return Ok(Some(v));
                }
                r.reasons.push(format!(
                    "the rehearsal server serves {v}, not the target {}: check [rehearsal] image",
                    r.target
                ));
                r.log_excerpt = Some(self.excerpt(host, r).await);
                return Ok(None);
            }
            if let Some(code) = host.stopped(r).await? {
                let excerpt = self.excerpt(host, r).await;
                let error = excerpt
                    .lines()
                    .rev()
                    .find(|l| l.to_ascii_lowercase().contains("error"))
                    .map(|l| l.trim().to_string());
                r.reasons.push(format!(
                    "the migrations or the start failed: the rehearsal server stopped (exit {}) before it served {}{}",
                    code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()),
                    r.target,
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ));
                r.error = error;
                r.log_excerpt = Some(excerpt);
                return Ok(None);
            }
            if Instant::now() >= deadline {
                r.reasons.push(format!(
                    "the rehearsal server did not serve {} within {} ({setting})",
                    r.target,
                    crate::process::clock::human_duration(limit)
                ));
                r.log_excerpt = Some(self.excerpt(host, r).await);
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn excerpt(&self, host: &dyn host::RehearsalHost, r: &Rehearsal) -> String {
        self.log.scrub(&host.logs(r).await)
    }

    /// `[rehearsal] master_key_file`, else the newest key octoup saved in `[backup] dir`,
    /// else read from the primary node (`show-master-key`, which changes nothing) and saved
    /// there like an upgrade does.
    async fn master_key(&self) -> Result<Secret, RehearsalError> {
        let config = &self.conn.config;
        let read = |path: &std::path::Path| -> Result<Secret, RehearsalError> {
            let text = std::fs::read_to_string(path).map_err(|e| {
                RehearsalError::Setup(format!(
                    "cannot read the master key file {}: {e}",
                    path.display()
                ))
            })?;
            let key = text.trim();
            if key.is_empty() {
                return Err(RehearsalError::Setup(format!(
                    "the master key file {} is empty",
                    path.display()
                )));
            }
            Ok(Secret::new(key))
        };
        if let Some(path) = &config.rehearsal.master_key_file {
            return read(path);
        }
        let newest = std::fs::read_dir(&config.backup.dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("master-key-") && n.ends_with(".txt")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max_by_key(|(t, _)| *t);
        if let Some((_, path)) = newest {
            return read(&path);
        }
        let nodes = config.effective_nodes()?;
        let primary = nodes.iter().find(|n| n.primary).unwrap_or(&nodes[0]);
        let name = if primary.name.is_empty() {
            "this-machine"
        } else {
            &primary.name
        };
        let agent = self.conn.agent(primary, name, &primary.url)?;
        let path = crate::backup::save_master_key(
            agent.as_ref(),
            &config.backup.dir,
            &self.log,
            &crate::backup::stamp(),
        )
        .await
        .map_err(|e| RehearsalError::Setup(format!("the master key: {e}")))?;
        read(&path)
    }

    /// Tears down what `r` names; records what was removed. Never fails: what could not be
    /// removed is said, and left for `--cleanup`.
    async fn teardown(&self, r: &mut Rehearsal, book: &Rehearsals) {
        let runner = self.conn.runner.as_ref();
        let mut actions = Vec::new();
        let mut ok = match self.host(r.host) {
            Ok(host) => host.teardown(r, &mut actions).await,
            Err(e) if r.host_made() => {
                actions.push(format!("could not tear down on the {:?} host: {e}", r.host));
                false
            }
            Err(_) => true,
        };
        if r.scratch_made {
            let side = match self.side_holding(r) {
                Ok(side) => Ok(side),
                Err(why) => Err(DatabaseError::Failed {
                    what: "drop the rehearsal copy".into(),
                    detail: why,
                    fix: "put that [rehearsal.sql] back and run `octoup rehearse --cleanup`, or drop it there by hand".into(),
                }),
            };
            let dropped = match side {
                Ok(side) => side.drop_scratch(runner, &r.scratch_database).await,
                Err(e) => Err(e),
            };
            let on = r
                .sql_server
                .as_deref()
                .map(|s| format!(" on the rehearsal SQL Server {s}"))
                .unwrap_or_default();
            match dropped {
                Ok(true) => {
                    actions.push(format!("dropped the database {}{on}", r.scratch_database))
                }
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    actions.push(format!(
                        "could not drop the database {}{on}: {}",
                        r.scratch_database,
                        self.log.scrub(&e.to_string())
                    ));
                }
            }
        }
        if let Some(b) = &r.backup
            && b.reused_from.is_none()
        {
            actions.push(format!(
                "kept the backup {} (reusable with [rehearsal] reuse_backup_hours)",
                b.files.join(", ")
            ));
        }
        for a in &actions {
            self.events.note(a);
        }
        r.teardown = Teardown {
            done: ok,
            at: Some(jiff::Timestamp::now()),
            actions,
        };
        if let Err(e) = book.save(r) {
            self.events
                .note(&format!("the teardown could not be journaled: {e}"));
        }
    }

    /// `[rehearsal.sql]`'s server name, as the journal records it.
    fn copy_server_name(&self) -> Option<String> {
        self.conn
            .config
            .rehearsal
            .sql
            .as_ref()
            .and_then(|s| s.server_name())
            .map(str::to_string)
    }

    /// The database side of the SQL Server that holds `r`'s copy: the rehearsal SQL Server
    /// it names (which must still be configured), else production's.
    fn side_holding(&self, r: &Rehearsal) -> Result<DatabaseSide, String> {
        let Some(name) = &r.sql_server else {
            let mut side = self.side.clone();
            side.hosting = r.hosting;
            return Ok(side);
        };
        match (&self.copy_server, self.copy_server_name()) {
            (Some(server), Some(now)) if crate::config::same_sql_server(name, &now) => {
                Ok(server.clone())
            }
            (_, now) => Err(format!(
                "the copy is on the rehearsal SQL Server {name}, and [rehearsal.sql] {}",
                match now {
                    Some(now) => format!("now names {now}"),
                    None => "is no longer configured".into(),
                }
            )),
        }
    }

    /// Tears down every rehearsal whose teardown is not done (killed, or a teardown that
    /// failed), before anything new is made.
    async fn clean_leftovers(&self, book: &Rehearsals) -> Result<Vec<Rehearsal>, RehearsalError> {
        let mut cleaned = Vec::new();
        for mut old in book.all()? {
            if old.teardown.done {
                continue;
            }
            self.events.note(&format!(
                "rehearsal {} ({}) left things behind: tearing them down first",
                old.id,
                old.status.as_str()
            ));
            if old.status == RehearsalStatus::Running {
                old.status = RehearsalStatus::Interrupted;
                old.error.get_or_insert_with(|| {
                    "the rehearsal was killed before its teardown; torn down later".into()
                });
            }
            self.teardown(&mut old, book).await;
            cleaned.push(old);
        }
        Ok(cleaned)
    }
}

/// How the copy is made from a backup on a hosting: the backup strategy whose code takes
/// it (docs/database.md) and what the phases say.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CopyBy {
    strategy: DatabaseStrategy,
    media: BackupMedia,
    method: &'static str,
    backup: &'static str,
    verify: &'static str,
}

impl CopyBy {
    /// The way for a hosting that restores backups (self-managed, Managed Instance, RDS),
    /// or what the config lacks for it.
    fn for_hosting(
        hosting: Option<Hosting>,
        database: &DatabaseConfig,
    ) -> Result<CopyBy, RehearsalError> {
        let (copy, missing) = match hosting {
            Some(Hosting::AzureSqlManagedInstance) => (
                CopyBy {
                    strategy: DatabaseStrategy::Url,
                    media: BackupMedia::Url,
                    method: "restore-from-url",
                    backup: "COPY_ONLY, CHECKSUM to URL: production keeps serving",
                    verify: "RESTORE VERIFYONLY FROM URL",
                },
                database.url.is_none().then_some(
                    "a rehearsal copy on Azure SQL Managed Instance is a COPY_ONLY backup to URL restored under a new name, and [database] url is not set: set it to \"https://<account>.blob.core.windows.net/<container>\" and, unless the server has that credential, [database] sas_token_file",
                ),
            ),
            Some(Hosting::AmazonRds) => (
                CopyBy {
                    strategy: DatabaseStrategy::Rds,
                    media: BackupMedia::S3,
                    method: "rds-restore",
                    // RDS has no COPY_ONLY: the full becomes the base of later native
                    // differentials (SQLServer.Procedural.Importing.md).
                    backup: "rds_backup_database @type = FULL to S3: production keeps serving",
                    verify: "the RDS task's SUCCESS",
                },
                database.rds_s3_arn.is_none().then_some(
                    "a rehearsal copy on Amazon RDS is a native backup to S3 restored under a new name, and [database] rds_s3_arn is not set: set it to \"arn:aws:s3:::<bucket>/<prefix>\" (same region, with the SQLSERVER_BACKUP_RESTORE option's IAM role allowed to write there)",
                ),
            ),
            _ => (
                CopyBy {
                    strategy: DatabaseStrategy::Native,
                    media: BackupMedia::Disk,
                    method: "restore",
                    backup: "COPY_ONLY, CHECKSUM: production keeps serving",
                    verify: "RESTORE VERIFYONLY",
                },
                None,
            ),
        };
        match missing {
            Some(why) => Err(RehearsalError::Setup(why.into())),
            None => Ok(copy),
        }
    }

    /// The database side takes the backup with that strategy's code, for that hosting.
    fn apply(&self, side: &mut DatabaseSide, hosting: Option<Hosting>) {
        side.strategy = self.strategy;
        side.hosting = hosting;
    }
}

/// A fresh key for the rehearsal server's admin (`ADMIN_API_KEY`): `API-` + 26 of
/// `[A-Z0-9]`, like Octopus's own.
pub(crate) fn new_api_key() -> Secret {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let body: String = (0..26)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    Secret::new(format!("API-{body}"))
}

/// Findings the report shows, for the CLI.
pub fn blockers(r: &Rehearsal) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_restoring_hosting_copies_with_its_strategy_and_says_what_is_missing() {
        let none = DatabaseConfig::default();
        for hosting in [None, Some(Hosting::SelfManaged)] {
            let c = CopyBy::for_hosting(hosting, &none).unwrap();
            assert_eq!(
                (c.strategy, c.media, c.method),
                (DatabaseStrategy::Native, BackupMedia::Disk, "restore")
            );
        }
        let mi = CopyBy::for_hosting(Some(Hosting::AzureSqlManagedInstance), &none)
            .unwrap_err()
            .to_string();
        assert!(
            mi.contains("[database] url") && mi.contains("sas_token_file"),
            "{mi}"
        );
        let rds = CopyBy::for_hosting(Some(Hosting::AmazonRds), &none)
            .unwrap_err()
            .to_string();
        assert!(rds.contains("[database] rds_s3_arn"), "{rds}");
        let set = DatabaseConfig {
            url: Some("https://a.blob.core.windows.net/c".into()),
            rds_s3_arn: Some("arn:aws:s3:::b/p".into()),
            ..DatabaseConfig::default()
        };
        let c = CopyBy::for_hosting(Some(Hosting::AzureSqlManagedInstance), &set).unwrap();
        assert_eq!(
            (c.strategy, c.media, c.method),
            (DatabaseStrategy::Url, BackupMedia::Url, "restore-from-url")
        );
        let c = CopyBy::for_hosting(Some(Hosting::AmazonRds), &set).unwrap();
        assert_eq!(
            (c.strategy, c.media, c.method),
            (DatabaseStrategy::Rds, BackupMedia::S3, "rds-restore")
        );
        assert!(c.backup.contains("@type = FULL"), "{}", c.backup);
    }

    #[test]
    fn the_rehearsal_sql_server_reads_the_backup_from_its_view_of_the_share() {
        let point = RollbackPoint::Backup {
            media: crate::database::Media::Disk,
            files: vec![
                "D:\\SQLBackups\\OctopusDeploy-1of2.bak".into(),
                "/var/opt/mssql/backup/OctopusDeploy-2of2.bak".into(),
            ],
            bytes: Some(7),
            seconds: None,
        };
        let RollbackPoint::Backup { files, bytes, .. } =
            point.seen_from(std::path::Path::new("\\\\sql01\\SQLBackups\\"))
        else {
            panic!("still a backup");
        };
        assert_eq!(
            files,
            [
                "\\\\sql01\\SQLBackups\\OctopusDeploy-1of2.bak",
                "\\\\sql01\\SQLBackups\\OctopusDeploy-2of2.bak"
            ]
        );
        assert_eq!(bytes, Some(7));
        let RollbackPoint::Backup { files, .. } =
            point.seen_from(std::path::Path::new("/mnt/share"))
        else {
            panic!("still a backup");
        };
        assert_eq!(files[0], "/mnt/share/OctopusDeploy-1of2.bak");
        // A point that is no disk file stays what it is.
        let url = RollbackPoint::Snapshot { name: "s".into() };
        assert_eq!(url.seen_from(std::path::Path::new("/x")), url);
    }
}
