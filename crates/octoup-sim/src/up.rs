//! `up` and `down`: start the daemon for a new installation and write `DIR/octoup.toml`;
//! ask the daemon to exit.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::spec::{Spec, SpecError};
use crate::state::{Ports, Secrets, SpareNode, State, Store, StoreError};

/// How long `up` waits for the daemon's listeners and `down` for the daemon to exit.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the simulator daemon for {dir} is already running (feed on port {port}); use it, or stop it with `octoup-sim down --dir {dir}`"
    )]
    AlreadyRunning { dir: String, port: u16 },
    #[error(
        "cannot start the simulator daemon ({program}): {source}; check that the program exists"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the simulator daemon exited ({status}) before it was ready; its log {log} says:\n{tail}"
    )]
    DaemonDied {
        status: String,
        log: String,
        tail: String,
    },
    #[error(
        "the simulator daemon did not answer on {what} within {secs} s; see {log}, then `octoup-sim down --dir {dir}` and try again"
    )]
    NotReady {
        what: String,
        secs: u64,
        log: String,
        dir: String,
    },
    #[error(
        "the simulator daemon for {dir} did not exit within {secs} s; end process {pid} by hand"
    )]
    DidNotStop { dir: String, secs: u64, pid: String },
}

/// What `up` was asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpOptions {
    pub dir: PathBuf,
    pub nodes: Option<u32>,
    pub version: Option<String>,
    pub spec: Option<PathBuf>,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UpReport {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<(String, String)>,
    pub feed: String,
    /// False when an existing installation was restarted.
    pub created: bool,
}

/// Creates the installation (or restarts the daemon of an existing one), writes
/// `DIR/octoup.toml`, starts the daemon detached and waits until every node API and the
/// feed answer. `prefix` is the argv that runs this simulator (e.g. `[octoup-sim]` or
/// `[octoup, sim]`); it goes into the config's argv prefixes and starts the daemon.
pub(crate) fn up(prefix: &[OsString], options: &UpOptions) -> Result<UpReport, UpError> {
    let io = |what, path: &Path| {
        let path = path.display().to_string();
        move |source| UpError::Io { what, path, source }
    };
    std::fs::create_dir_all(&options.dir).map_err(io("cannot create", &options.dir))?;
    let dir = std::path::absolute(&options.dir).map_err(io("cannot resolve", &options.dir))?;
    let (store, created) = match Store::open(&dir) {
        Ok(store) => {
            let port = store.read(|s| s.feed_port)?;
            if http_status(port, "GET", crate::server::FEED_PATH).is_ok() {
                return Err(UpError::AlreadyRunning {
                    dir: dir.display().to_string(),
                    port,
                });
            }
            (store, false)
        }
        Err(StoreError::NotFound(_)) => (create(&dir, options)?, true),
        Err(e) => return Err(e.into()),
    };
    let state = store.snapshot()?;
    let config = dir.join("octoup.toml");
    let text = config_toml(prefix, &dir, &state);
    std::fs::write(&config, text).map_err(io("cannot write", &config))?;

    let log = dir.join("daemon.log");
    let mut child = spawn_daemon(prefix, &dir, &log)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut waiting: Vec<(String, u16, &str)> = state
        .nodes
        .iter()
        .map(|n| {
            (
                format!("node {} (port {})", n.name, n.api_port),
                n.api_port,
                "/api",
            )
        })
        .collect();
    waiting.push((
        format!("the feed (port {})", state.feed_port),
        state.feed_port,
        crate::server::FEED_PATH,
    ));
    while let Some((what, port, path)) = waiting.first().cloned() {
        if http_status(port, "GET", path).is_ok() {
            waiting.remove(0);
            continue;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(UpError::DaemonDied {
                status: status.to_string(),
                log: log.display().to_string(),
                tail: tail(&log),
            });
        }
        if Instant::now() >= deadline {
            return Err(UpError::NotReady {
                what,
                secs: READY_TIMEOUT.as_secs(),
                log: log.display().to_string(),
                dir: dir.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(UpReport {
        nodes: state
            .nodes
            .iter()
            .map(|n| (n.name.clone(), node_url(n.api_port)))
            .collect(),
        feed: format!("{}{}", feed_base(state.feed_port), crate::server::FEED_PATH),
        config,
        dir,
        created,
    })
}

/// A new installation in `dir`: state, secret files and working directories.
fn create(dir: &Path, options: &UpOptions) -> Result<Store, UpError> {
    let mut spec = match &options.spec {
        Some(path) => Spec::load(path)?,
        None => Spec::default(),
    };
    if let Some(n) = options.nodes {
        spec.nodes = n;
    }
    if let Some(v) = &options.version {
        spec.version = v.clone();
    }
    spec.validate()?;
    // The feed, one per node, one per spare node, and the SQL Server port last.
    let spares = crate::spec::spare_node_names(&spec);
    let mut ports =
        free_ports(spec.nodes as usize + spares.len() + 3).map_err(|source| UpError::Io {
            what: "cannot find free ports on",
            path: "127.0.0.1".into(),
            source,
        })?;
    let rehearsal_sql_port = ports.pop().unwrap_or(0);
    let sql_port = ports.pop().unwrap_or(0);
    let spare_ports = ports.split_off(spec.nodes as usize + 1);
    let ports = Ports {
        feed: ports[0],
        nodes: ports[1..].to_vec(),
    };
    let secrets = Secrets::generate();
    let io = |what, path: PathBuf| {
        let shown = path.display().to_string();
        move |source| UpError::Io {
            what,
            path: shown,
            source,
        }
    };
    for (file, secret) in [
        ("api-key.txt", &secrets.admin_api_key),
        ("api-key-readonly.txt", &secrets.readonly_api_key),
        ("sql-password.txt", &secrets.sql_password),
    ] {
        let path = dir.join(file);
        crate::platform::write_secret(&path, secret).map_err(io("cannot write", path.clone()))?;
    }
    for sub in ["sql-backups", "octoup-backups", "octoup-state"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(io("cannot create", path.clone()))?;
    }
    for name in spec.node_names() {
        let home = crate::standins::exe::node_home(dir, &name);
        std::fs::create_dir_all(&home).map_err(io("cannot create", home.clone()))?;
    }
    let mut state = State::new(&spec, &ports, secrets);
    state.spare_nodes = spares
        .into_iter()
        .zip(spare_ports)
        .map(|(name, port)| SpareNode::new(name, port))
        .collect();
    state.sql_port = sql_port;
    state.sql_server = format!("127.0.0.1,{sql_port}");
    let rehearsal = spec.rehearsal_sql_server.then(|| {
        // Its own login password, databases and port; production's master key (the copy's).
        let mut own = state.clone();
        own.forget_pending();
        own.instance_dbs = Default::default();
        own.backups.clear();
        own.secrets.sql_password = Secrets::generate().sql_password;
        own.sql_port = rehearsal_sql_port;
        own.sql_server = format!("127.0.0.1,{rehearsal_sql_port}");
        own.server_label = Some("rehearsal".into());
        state.rehearsal_sql_port = rehearsal_sql_port;
        own
    });
    let store = Store::create(dir, state)?;
    if let Some(mut own) = rehearsal {
        let sub = dir.join(crate::state::REHEARSAL_SQL_DIR);
        std::fs::create_dir_all(&sub).map_err(io("cannot create", sub.clone()))?;
        let path = sub.join("sql-password.txt");
        crate::platform::write_secret(&path, &own.secrets.sql_password)
            .map_err(io("cannot write", path.clone()))?;
        own.record(crate::history::Event::SqlServerCreated {
            address: own.sql_server.clone(),
        });
        Store::create(&sub, own)?;
    }
    Ok(store)
}

/// Asks the daemon to exit through its control endpoint and waits until it has.
/// Returns false when no daemon was running.
pub(crate) fn down(dir: &Path) -> Result<bool, UpError> {
    let store = Store::open(dir)?;
    let (port, pid) = store.read(|s| (s.feed_port, s.daemon.as_ref().map(|d| d.pid)))?;
    if http_status(port, "POST", crate::server::SHUTDOWN_PATH).is_err() {
        return Ok(false);
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let gone = store.read(|s| s.daemon.is_none())?
            && http_status(port, "GET", crate::server::FEED_PATH).is_err();
        if gone {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Err(UpError::DidNotStop {
                dir: dir.display().to_string(),
                secs: READY_TIMEOUT.as_secs(),
                pid: pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_daemon(prefix: &[OsString], dir: &Path, log: &Path) -> Result<Child, UpError> {
    let program = prefix
        .first()
        .cloned()
        .unwrap_or_else(|| "octoup-sim".into());
    let io = |source| UpError::Io {
        what: "cannot write",
        path: log.display().to_string(),
        source,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let mut command = Command::new(&program);
    command
        .args(&prefix[1.min(prefix.len())..])
        .arg("serve")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    crate::platform::detach(&mut command);
    command.spawn().map_err(|source| UpError::Spawn {
        program: PathBuf::from(program).display().to_string(),
        source,
    })
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// `count` distinct free ports on 127.0.0.1 (all bound at once so they differ).
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Sends a minimal HTTP/1.1 request to 127.0.0.1:`port` and returns the status code.
pub fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}

fn node_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn feed_base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

#[derive(Serialize)]
struct ConfigFile {
    server: ServerSection,
    versions: VersionsSection,
    installer: InstallerSection,
    database: DatabaseSection,
    backup: DirSection,
    drain: DrainSection,
    state: DirSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    rehearsal: Option<RehearsalSection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<NodeSection>,
}

/// `[rehearsal.windows]` naming the first spare node (the host stays Docker unless the
/// operator chooses it), and `[rehearsal.sql]` for the rehearsal SQL Server.
#[derive(Serialize)]
struct RehearsalSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<WindowsSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<RehearsalSqlSection>,
}

#[derive(Serialize)]
struct RehearsalSqlSection {
    sqlcmd: Vec<String>,
    password_file: String,
    backup_dir: String,
}

#[derive(Serialize)]
struct WindowsSection {
    home: String,
    listen_port: u16,
    node: SpareSection,
}

#[derive(Serialize)]
struct SpareSection {
    name: String,
    url: String,
    server_exe: Vec<String>,
    install: Vec<String>,
    uninstall: Vec<String>,
}

#[derive(Serialize)]
struct ServerSection {
    url: String,
    api_key_file: String,
    instance: String,
    server_exe: Vec<String>,
}

#[derive(Serialize)]
struct VersionsSection {
    feed: String,
}

#[derive(Serialize)]
struct InstallerSection {
    url: String,
    install: Vec<String>,
    uninstall: Vec<String>,
}

#[derive(Serialize)]
struct DatabaseSection {
    name: String,
    sqlcmd: Vec<String>,
    password_file: String,
    backup_dir: String,
}

#[derive(Serialize)]
struct DirSection {
    dir: String,
}

#[derive(Serialize)]
struct DrainSection {
    wait_seconds: u64,
    cancel_tasks: bool,
}

#[derive(Serialize)]
struct NodeSection {
    name: String,
    url: String,
    primary: bool,
    server_exe: Vec<String>,
    install: Vec<String>,
    uninstall: Vec<String>,
}

/// The text of `DIR/octoup.toml` (see docs/simulator.md).
pub(crate) fn config_toml(prefix: &[OsString], dir: &Path, state: &State) -> String {
    let d = dir.display().to_string();
    let path = |name: &str| dir.join(name).display().to_string();
    let argv = |tail: &[&str]| -> Vec<String> {
        prefix
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .chain(tail.iter().map(|s| s.to_string()))
            .collect()
    };
    let server_exe = |node: &str| argv(&["exe", "--dir", &d, "--node", node]);
    let msiexec = |node: &str, action: &str, properties: &[&str]| {
        let mut tail = vec![
            "msiexec",
            "--dir",
            &d,
            "--node",
            node,
            action,
            "{installer}",
            "/quiet",
        ];
        tail.extend_from_slice(properties);
        tail.extend_from_slice(&["/norestart", "/l*v", "{log}"]);
        argv(&tail)
    };
    let install = |node: &str| msiexec(node, "/i", &["RUNMANAGERONEXIT=no"]);
    // A downgrade (rollback) must uninstall first, as the real MSI refuses to go back.
    let uninstall = |node: &str| msiexec(node, "/x", &[]);
    let first = &state.nodes[0];
    let nodes = if state.nodes.len() > 1 {
        state
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSection {
                name: n.name.clone(),
                url: node_url(n.api_port),
                primary: i == 0,
                server_exe: server_exe(&n.name),
                install: install(&n.name),
                uninstall: uninstall(&n.name),
            })
            .collect()
    } else {
        Vec::new()
    };
    let file = ConfigFile {
        server: ServerSection {
            url: node_url(first.api_port),
            api_key_file: path("api-key.txt"),
            instance: state.instance.clone(),
            server_exe: server_exe(&first.name),
        },
        versions: VersionsSection {
            feed: format!("{}{}", feed_base(state.feed_port), crate::server::FEED_PATH),
        },
        installer: InstallerSection {
            url: format!(
                "{}/octopus/Octopus.{{version}}-x64.msi",
                feed_base(state.feed_port)
            ),
            install: install(&first.name),
            uninstall: uninstall(&first.name),
        },
        database: DatabaseSection {
            name: state.database.name.clone(),
            sqlcmd: argv(&[
                "sqlcmd",
                "--dir",
                &d,
                "-S",
                &state.sql_server,
                "-d",
                "master",
                "-U",
                &state.secrets.sql_login,
                "-b",
            ]),
            password_file: path("sql-password.txt"),
            backup_dir: path("sql-backups"),
        },
        backup: DirSection {
            dir: path("octoup-backups"),
        },
        drain: DrainSection {
            wait_seconds: 60,
            cancel_tasks: false,
        },
        state: DirSection {
            dir: path("octoup-state"),
        },
        rehearsal: rehearsal_section(state, &argv, &path, &server_exe, &install, &uninstall),
        nodes,
    };
    let body = toml::to_string(&file).unwrap_or_default();
    format!(
        "# Written by `octoup-sim up` for the simulated installation in {d}.\n# The API key, SQL password and master key live in files, never here.\n\n{body}"
    )
}

/// `[rehearsal]`: the first spare node and the rehearsal SQL Server, when there are.
fn rehearsal_section(
    state: &State,
    argv: &dyn Fn(&[&str]) -> Vec<String>,
    path: &dyn Fn(&str) -> String,
    server_exe: &dyn Fn(&str) -> Vec<String>,
    install: &dyn Fn(&str) -> Vec<String>,
    uninstall: &dyn Fn(&str) -> Vec<String>,
) -> Option<RehearsalSection> {
    let sql = (state.rehearsal_sql_port != 0).then(|| {
        let sub = crate::state::REHEARSAL_SQL_DIR;
        let d = path("");
        let d = d.trim_end_matches(['/', '\\']);
        RehearsalSqlSection {
            sqlcmd: argv(&[
                "sqlcmd",
                "--dir",
                d,
                "--server",
                "rehearsal",
                "-S",
                &format!("127.0.0.1,{}", state.rehearsal_sql_port),
                "-d",
                "master",
                "-U",
                &state.secrets.sql_login,
                "-b",
            ]),
            password_file: path(&format!("{sub}/sql-password.txt")),
            // The same folder by another path: the rehearsal server's view of the share.
            backup_dir: path(&format!("{sub}/../sql-backups")),
        }
    });
    let windows = state.spare_nodes.first().map(|spare| WindowsSection {
        home: path("spare-homes"),
        listen_port: spare.listen_port,
        node: SpareSection {
            name: spare.name.clone(),
            url: node_url(spare.listen_port),
            server_exe: server_exe(&spare.name),
            install: install(&spare.name),
            uninstall: uninstall(&spare.name),
        },
    });
    (windows.is_some() || sql.is_some()).then_some(RehearsalSection { windows, sql })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_binary_prefixes_every_argv() {
        let spec = Spec {
            nodes: 2,
            ..Spec::default()
        };
        let ports = Ports {
            feed: 41000,
            nodes: vec![41001, 41002],
        };
        let state = State::new(&spec, &ports, Secrets::generate());
        let prefix: Vec<OsString> = vec!["/opt/octoup".into(), "sim".into()];
        let text = config_toml(&prefix, Path::new("/d"), &state);
        let config: toml::Value = toml::from_str(&text).unwrap();
        let argv = |v: &toml::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            argv(&config["server"]["server_exe"]),
            [
                "/opt/octoup",
                "sim",
                "exe",
                "--dir",
                "/d",
                "--node",
                "OCTO-NODE-01"
            ]
        );
        assert_eq!(
            argv(&config["database"]["sqlcmd"])[..3],
            ["/opt/octoup", "sim", "sqlcmd"]
        );
        assert_eq!(
            argv(&config["nodes"][1]["install"])[..3],
            ["/opt/octoup", "sim", "msiexec"]
        );
        assert_eq!(
            config["server"]["url"].as_str(),
            Some("http://127.0.0.1:41001")
        );
        assert_eq!(
            config["nodes"][1]["url"].as_str(),
            Some("http://127.0.0.1:41002")
        );
        // No secret in the config.
        assert!(!text.contains(&state.secrets.sql_password));
        assert!(!text.contains(&state.secrets.admin_api_key));
        assert!(
            config.get("rehearsal").is_none(),
            "no spare node, no [rehearsal]"
        );
    }

    #[test]
    fn a_spare_node_is_named_for_the_windows_rehearsal_host_outside_the_nodes() {
        let spec = Spec {
            nodes: 2,
            spare_nodes: 1,
            ..Spec::default()
        };
        let ports = Ports {
            feed: 41000,
            nodes: vec![41001, 41002],
        };
        let mut state = State::new(&spec, &ports, Secrets::generate());
        state.spare_nodes = vec![SpareNode::new("OCTO-SPARE-01".into(), 41003)];
        let text = config_toml(&["/bin/octoup-sim".into()], Path::new("/d"), &state);
        let config: toml::Value = toml::from_str(&text).unwrap();
        let w = &config["rehearsal"]["windows"];
        assert_eq!(w["listen_port"].as_integer(), Some(41003));
        assert_eq!(w["node"]["name"].as_str(), Some("OCTO-SPARE-01"));
        assert_eq!(w["node"]["url"].as_str(), Some("http://127.0.0.1:41003"));
        assert!(
            w["node"]["server_exe"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str() == Some("OCTO-SPARE-01"))
        );
        // The Docker host stays the default, and the spare is none of the nodes.
        assert!(config["rehearsal"].get("host").is_none());
        assert!(
            config["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["name"].as_str() != Some("OCTO-SPARE-01"))
        );
    }

    #[test]
    fn a_rehearsal_sql_server_gets_its_own_sqlcmd_password_and_view_of_the_backups() {
        let ports = Ports {
            feed: 41000,
            nodes: vec![41001],
        };
        let mut state = State::new(&Spec::default(), &ports, Secrets::generate());
        state.sql_server = "127.0.0.1,41002".into();
        state.rehearsal_sql_port = 41003;
        let text = config_toml(&["/bin/octoup-sim".into()], Path::new("/d"), &state);
        let config: toml::Value = toml::from_str(&text).unwrap();
        let sql = &config["rehearsal"]["sql"];
        let argv: Vec<&str> = sql["sqlcmd"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            argv.windows(2).any(|w| w == ["--server", "rehearsal"])
                && argv.windows(2).any(|w| w == ["-S", "127.0.0.1,41003"]),
            "{argv:?}"
        );
        assert!(
            sql["password_file"]
                .as_str()
                .unwrap()
                .contains("rehearsal-sql")
        );
        assert!(
            sql["backup_dir"]
                .as_str()
                .unwrap()
                .ends_with("rehearsal-sql/../sql-backups")
        );
        assert!(config["rehearsal"].get("windows").is_none());
    }
}
