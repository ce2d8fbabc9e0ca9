//! A fluent builder for a simulated installation: the spec, the generated `octoup.toml`'s
//! edits, and the scene before octoup runs (watchdogs, drained nodes, maintenance, faults).

use crate::ran::Ran;
use crate::sim::{Launcher, Sim};

/// One fault: `octoup-sim fault --op OP --action ACTION [--node N] [--times K]`.
#[derive(Clone)]
struct Fault {
    op: String,
    action: String,
    node: Option<String>,
    times: u32,
}

#[derive(Clone)]
pub struct Scenario {
    nodes: u32,
    spare_nodes: u32,
    rehearsal_sql_server: bool,
    time_scale: f64,
    launcher: Launcher,
    faults: Vec<Fault>,
    workload: Vec<(String, f64)>,
    watchdogs: Vec<String>,
    config: Vec<(String, String, toml::Value)>,
    readonly_key: bool,
    maintenance_before: bool,
    drained_before: Vec<String>,
    spec_extra: String,
    /// `[server]` and `[license]` keys of the spec, and `[[machines]]` entries.
    server: Vec<(String, toml::Value)>,
    license: Vec<(String, toml::Value)>,
    machines: Vec<Vec<(String, toml::Value)>>,
    /// The spec's `[database]` keys.
    database: toml::Table,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::new()
    }
}

impl Scenario {
    /// One node at 2 ms per simulated second, started with the `octoup-sim` binary.
    pub fn new() -> Scenario {
        Scenario {
            nodes: 1,
            spare_nodes: 0,
            rehearsal_sql_server: false,
            time_scale: 0.002,
            launcher: Launcher::OctoupSim,
            faults: Vec::new(),
            workload: Vec::new(),
            watchdogs: Vec::new(),
            config: Vec::new(),
            readonly_key: false,
            maintenance_before: false,
            drained_before: Vec::new(),
            spec_extra: String::new(),
            server: Vec::new(),
            license: Vec::new(),
            machines: Vec::new(),
            database: toml::Table::new(),
        }
    }

    /// Spare Windows nodes outside the installation (the Windows rehearsal host); the
    /// first is named in the config's `[rehearsal.windows.node]`.
    pub fn spare_nodes(mut self, n: u32) -> Self {
        self.spare_nodes = n;
        self
    }

    /// A second simulated SQL Server for rehearsals (`DIR/rehearsal-sql`), named in the
    /// config's `[rehearsal.sql]`.
    pub fn rehearsal_sql_server(mut self) -> Self {
        self.rehearsal_sql_server = true;
        self
    }

    pub fn nodes(mut self, n: u32) -> Self {
        self.nodes = n;
        self
    }

    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    /// Start (and drive) the simulator through `octoup sim` instead of `octoup-sim`, so the
    /// stand-ins in its octoup.toml are the `octoup` binary too.
    pub fn through_octoup(mut self) -> Self {
        self.launcher = Launcher::Octoup;
        self
    }

    /// Extra spec TOML (top-level keys or tables such as `[durations]`), appended to the
    /// generated spec.
    pub fn spec(mut self, toml: &str) -> Self {
        self.spec_extra.push_str(toml);
        self.spec_extra.push('\n');
        self
    }

    /// Sets the spec's `[database] key = value` (the simulated SQL Server: `sql_version`,
    /// `hosting`, `collation_mismatches`, `can_restore`, … see docs/simulator.md).
    pub fn database(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.database.insert(key.into(), value.into());
        self
    }

    /// A fault that fires once.
    pub fn fault(self, op: &str, action: &str) -> Self {
        self.fault_times(op, action, None, 1)
    }

    /// A fault on one node (`node: None` = any), firing `times` times (0 = forever).
    pub fn fault_times(mut self, op: &str, action: &str, node: Option<&str>, times: u32) -> Self {
        self.faults.push(Fault {
            op: op.into(),
            action: action.into(),
            node: node.map(str::to_string),
            times,
        });
        self
    }

    /// A task executing on `node` for `seconds` simulated seconds.
    pub fn task(mut self, node: &str, seconds: f64) -> Self {
        self.workload.push((node.into(), seconds));
        self
    }

    /// A service watchdog on `node` before the upgrade.
    pub fn watchdog(mut self, node: &str) -> Self {
        self.watchdogs.push(node.into());
        self
    }

    /// Sets `[table] key = value` in the generated octoup.toml.
    pub fn config(mut self, table: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.config.push((table.into(), key.into(), value.into()));
        self
    }

    /// Use the API key of a user without AdministerSystem.
    pub fn readonly_key(mut self) -> Self {
        self.readonly_key = true;
        self
    }

    /// Maintenance mode is on before the upgrade.
    pub fn maintenance_before(mut self) -> Self {
        self.maintenance_before = true;
        self
    }

    /// `node` is drained before the upgrade.
    pub fn drained_before(mut self, node: &str) -> Self {
        self.drained_before.push(node.into());
        self
    }

    /// Sets `[server] key = value` in the spec (`os_version`, `integrity_errors`, …).
    pub fn server(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.server.push((key.into(), value.into()));
        self
    }

    /// Sets `[license] key = value` in the spec (`node_limit`, `expires`, …).
    pub fn license(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.license.push((key.into(), value.into()));
        self
    }

    /// The license term ends `days` from today (negative: it ended that long ago).
    pub fn license_expires_in_days(self, days: i64) -> Self {
        let date = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .checked_add(jiff::Span::new().days(days))
            .expect("a date in range");
        self.license("expires", date.to_string())
    }

    /// A deployment target or worker named `name` with `[[machines]]` fields (`space`,
    /// `role`, `os`, `os_version`, `tentacle_version`, `calamari_current`, `upgrade`).
    pub fn machine(mut self, name: &str, fields: &[(&str, toml::Value)]) -> Self {
        let mut entry = vec![("name".to_string(), toml::Value::from(name))];
        entry.extend(fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.machines.push(entry);
        self
    }

    /// The spec TOML this scenario starts the simulator with.
    fn spec_text(&self) -> String {
        let mut spec = format!(
            "time_scale = {}\nnodes = {}\nspare_nodes = {}\nrehearsal_sql_server = {}\n{}\n",
            self.time_scale,
            self.nodes,
            self.spare_nodes,
            self.rehearsal_sql_server,
            self.spec_extra
        );
        let table = |name: &str, keys: &[(String, toml::Value)]| {
            let mut t = format!("\n{name}\n");
            for (k, v) in keys {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t
        };
        if !self.server.is_empty() {
            spec.push_str(&table("[server]", &self.server));
        }
        if !self.license.is_empty() {
            spec.push_str(&table("[license]", &self.license));
        }
        for m in &self.machines {
            spec.push_str(&table("[[machines]]", m));
        }
        if !self.database.is_empty() {
            let mut t = toml::Table::new();
            t.insert("database".into(), toml::Value::Table(self.database.clone()));
            spec.push('\n');
            spec.push_str(&toml::to_string(&t).expect("a TOML table"));
        }
        for (node, secs) in &self.workload {
            spec.push_str(&format!(
                "\n[[workload]]\nnode = \"{node}\"\nduration = {secs}\nstate = \"Executing\"\nname = \"Deploy\"\ndescription = \"Deploy Web to Production on {node}\"\n"
            ));
        }
        spec
    }

    /// Starts the installation and sets the scene; octoup has not run yet.
    pub fn start(&self) -> Sim {
        let sim = Sim::up_with(&self.spec_text(), self.launcher);
        if !self.config.is_empty() || self.readonly_key {
            sim.edit_config(|cfg| self.edit(cfg));
        }
        for node in &self.watchdogs {
            let out = sim.exe(
                node,
                &["watchdog", "--create", "--interval=10", "--instances=*"],
            );
            assert!(out.status.success(), "watchdog --create: {out:?}");
        }
        for node in &self.drained_before {
            let out = sim.exe(node, &["node", "--instance=OctopusServer", "--drain=true"]);
            assert!(out.status.success(), "node --drain: {out:?}");
        }
        if self.maintenance_before {
            sim.set_maintenance(true);
        }
        for f in &self.faults {
            sim.fault(&f.op, &f.action, f.node.as_deref(), f.times);
        }
        sim
    }

    /// The config edits: `[table] key = value`s and the read-only key.
    fn edit(&self, cfg: &mut toml::Table) {
        for (table, key, value) in &self.config {
            let t = cfg
                .entry(table.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            t.as_table_mut()
                .expect("a table")
                .insert(key.clone(), value.clone());
        }
        if self.readonly_key {
            let server = cfg
                .get_mut("server")
                .and_then(|s| s.as_table_mut())
                .unwrap();
            let key = server["api_key_file"]
                .as_str()
                .unwrap()
                .replace("api-key.txt", "api-key-readonly.txt");
            server.insert("api_key_file".into(), key.into());
        }
    }

    /// Starts the installation, runs `octoup <args>` once, and collects the result (the
    /// simulation stays up until the returned [`Sim`] is dropped).
    pub fn run(&self, args: &[&str]) -> (Sim, Ran) {
        let sim = self.start();
        let ran = sim.octoup(args);
        (sim, ran)
    }
}
