//! `octoup-sim container --version V`: the vendor's Linux container
//! (`octopusdeploy/octopusdeploy:V`), played by the simulator. It reads only the
//! environment, as the vendor's image does, reaches the database through the simulator's
//! SQL Server port (see `server::sqlport`), migrates the schema when it is older, registers
//! its node and serves the Octopus API as one node at version V on `0.0.0.0:8080`
//! (`OCTOUP_SIM_CONTAINER_PORT` to use another port outside Docker), until killed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::spec::Spec;
use crate::state::{License, OctopusData, Ports, Secrets, State, Store};

/// The port the vendor's image serves the web portal and API on.
const HTTP_PORT: u16 = 8080;
/// How long the container keeps trying to reach SQL Server without `Connect Timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of `DB_CONNECTION_STRING` the container uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnectionString {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    /// `Connect Timeout` (or `Connection Timeout`, `Timeout`) in seconds, if given.
    pub connect_timeout: Option<u64>,
}

/// Parses an ADO.NET connection string: `key=value;…`, keys case-insensitive with their
/// synonyms, values optionally quoted (`"…"` or `'…'`, a doubled quote inside stands for
/// one); unknown keys are accepted and ignored, as SqlClient does for the ones it knows.
pub(crate) fn parse_connection_string(text: &str) -> Result<ConnectionString, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut pairs: Vec<(String, String)> = Vec::new();
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ';' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        let key = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if i >= chars.len() || chars[i] == ';' {
            if !key.is_empty() {
                return Err(format!(
                    "DB_CONNECTION_STRING: the keyword '{key}' has no value (expected key=value pairs separated by ';')"
                ));
            }
            i += 1;
            continue;
        }
        i += 1;
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
            let quote = chars[i];
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "DB_CONNECTION_STRING: the value of '{key}' has no closing quote"
                        ));
                    }
                    Some(&c) if c == quote && chars.get(i + 1) == Some(&quote) => {
                        value.push(quote);
                        i += 2;
                    }
                    Some(&c) if c == quote => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i] != ';' {
                i += 1;
            }
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ';' {
                i += 1;
            }
            value = chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
        }
        i += 1;
        if !key.is_empty() {
            pairs.push((key, value));
        }
    }
    let get = |names: &[&str]| -> Option<String> {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.clone())
    };
    let missing = |what: &str| {
        format!(
            "DB_CONNECTION_STRING has no {what}; expected Server=HOST,PORT;Database=NAME;User ID=USER;Password=PASSWORD"
        )
    };
    let server = get(&[
        "server",
        "data source",
        "address",
        "addr",
        "network address",
    ])
    .filter(|v| !v.is_empty())
    .ok_or_else(|| missing("Server (or Data Source)"))?;
    let database = get(&["database", "initial catalog"])
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("Database (or Initial Catalog)"))?;
    let user = get(&["user id", "uid", "user"])
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("User ID"))?;
    let password = get(&["password", "pwd"]).ok_or_else(|| missing("Password"))?;
    let server = server.strip_prefix("tcp:").unwrap_or(&server).to_string();
    let (host, port) = match server.split_once(',') {
        Some((h, p)) => (
            h.trim().to_string(),
            p.trim().parse::<u16>().map_err(|_| {
                format!("DB_CONNECTION_STRING: the port in Server={server} is not a number")
            })?,
        ),
        // A named instance or a bare host: SQL Server's default port.
        None => (
            server.split('\\').next().unwrap_or("").trim().to_string(),
            1433,
        ),
    };
    let connect_timeout = match get(&["connect timeout", "connection timeout", "timeout"]) {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            format!("DB_CONNECTION_STRING: Connect Timeout={v} is not a number of seconds")
        })?),
        None => None,
    };
    Ok(ConnectionString {
        host: if host == "." || host.eq_ignore_ascii_case("(local)") {
            "127.0.0.1".into()
        } else {
            host
        },
        port,
        database,
        user,
        password,
        connect_timeout,
    })
}

/// The container's settings, from the environment only.
#[derive(Debug)]
pub(crate) struct Settings {
    pub connection: ConnectionString,
    pub master_key: String,
    pub admin_api_key: String,
    pub node: String,
    pub port: u16,
}

/// The text the vendor's image prints without `ACCEPT_EULA=Y` (the simulator's wording).
pub(crate) const EULA: &str = "Octopus Deploy Server requires you to accept the Octopus Deploy End User License Agreement (https://octopus.com/company/legal). Set the environment variable ACCEPT_EULA to \"Y\" to accept it and start the server.";

/// Reads and checks the environment.
pub(crate) fn settings(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
    if env("ACCEPT_EULA").as_deref().map(str::trim) != Some("Y") {
        return Err(EULA.into());
    }
    let connection = parse_connection_string(
        &env("DB_CONNECTION_STRING")
            .filter(|v| !v.trim().is_empty())
            .ok_or("DB_CONNECTION_STRING is not set: the server needs the connection string of its database")?,
    )?;
    let master_key = env("MASTER_KEY").filter(|v| !v.trim().is_empty()).ok_or(
        "MASTER_KEY is not set: the server needs the master key of the database it runs against",
    )?;
    use base64::Engine;
    if base64::engine::general_purpose::STANDARD
        .decode(master_key.trim())
        .is_err()
    {
        return Err("MASTER_KEY is not valid base64".into());
    }
    let admin_api_key = env("ADMIN_API_KEY").unwrap_or_default();
    let body = admin_api_key.strip_prefix("API-").unwrap_or("");
    if body.len() < 26
        || !body
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(
            "ADMIN_API_KEY must be an API key: API- followed by 26 or more of A-Z, 0-9".into(),
        );
    }
    // Accepted as the vendor's image accepts them; nothing here depends on them.
    let _ = (env("DISABLE_DIND"), env("TASK_CAP"));
    let node = env("OCTOPUS_SERVER_NODE_NAME")
        .or_else(|| env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "octopus-container".into());
    let port = match env("OCTOUP_SIM_CONTAINER_PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("OCTOUP_SIM_CONTAINER_PORT={p} is not a port number"))?,
        None => HTTP_PORT,
    };
    Ok(Settings {
        connection,
        master_key: master_key.trim().to_string(),
        admin_api_key,
        node,
        port,
    })
}

/// One request to the SQL Server port: (status, JSON body).
fn post(c: &ConnectionString, op: &str, fields: Value) -> std::io::Result<(u16, Value)> {
    let mut body = json!({
        "login": c.user,
        "password": c.password,
        "database": c.database,
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), fields) {
        b.extend(extra);
    }
    let body = body.to_string();
    let addr = (c.host.as_str(), c.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST /v1/{op} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        c.host,
        c.port,
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, rest) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let json = serde_json::from_str(rest).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((status, json))
}

/// A SQL Server error from the port's answer.
fn sql_error(v: &Value) -> String {
    format!(
        "SqlException (Msg {}): {}",
        v["number"],
        v["message"].as_str().unwrap_or("")
    )
}

/// Connects to the database as a server at `version` with `master_key` would (retrying
/// until the connect timeout): what the SQL Server port knows of it, or the error line the
/// server prints. One connection rule for the container and a Windows rehearsal instance.
pub(crate) fn connect(
    c: &ConnectionString,
    version: &str,
    master_key: &str,
) -> Result<Value, String> {
    let timeout = c
        .connect_timeout
        .map(Duration::from_secs)
        .unwrap_or(CONNECT_TIMEOUT);
    let deadline = Instant::now() + timeout;
    let connect = json!({ "version": version, "master_key": master_key });
    loop {
        match post(c, "connect", connect.clone()) {
            Ok((200, v)) => return Ok(v),
            Ok((_, v)) => return Err(format!("Error: {}", sql_error(&v))),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            Err(e) => {
                return Err(format!(
                    "Error: A network-related or instance-specific error occurred while establishing a connection to SQL Server. The server was not found or was not accessible. Verify that the instance name is correct and that SQL Server is configured to allow remote connections. (provider: TCP Provider, error: 40 - Could not open a connection to SQL Server: {e})"
                ));
            }
        }
    }
}

/// Migrates the connected database (`info` from [`connect`]) from `schema` to `version`
/// as the server does: timed by the database's size and the version distance
/// (`[durations]`), failing half way with `[database] migration_failure`; each step is
/// recorded through the SQL Server port (rehearsal-migration-started/finished/failed). The
/// error is the line the server prints. One rule for the container and `database --upgrade`
/// of a Windows rehearsal instance.
pub(crate) fn migrate(
    c: &ConnectionString,
    info: &Value,
    schema: &str,
    version: &str,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let lost = |e: std::io::Error| format!("Error: lost the connection to SQL Server: {e}");
    match crate::version::compare(schema, version) {
        std::cmp::Ordering::Greater => Err(format!(
            "Error: The database schema ({schema}) is newer than this version of Octopus Server ({version}). Downgrading a database is not supported."
        )),
        std::cmp::Ordering::Less => {
            log(&format!("Upgrading database from {schema} to {version}"));
            let fields = json!({ "from": schema, "to": version });
            post(c, "migration-start", fields.clone()).map_err(lost)?;
            let secs = info["migration_seconds"].as_f64().unwrap_or(0.0).max(0.0);
            let time_scale = info["time_scale"].as_f64().unwrap_or(1.0).max(0.0);
            let failure = info["data"]["migration_failure"]
                .as_str()
                .map(str::to_string);
            let sleep = |sim: f64| {
                std::thread::sleep(
                    Duration::try_from_secs_f64(sim * time_scale).unwrap_or_default(),
                )
            };
            if let Some(error) = failure {
                sleep(secs / 2.0);
                let _ = post(
                    c,
                    "migration-fail",
                    json!({ "from": schema, "to": version, "error": error }),
                );
                return Err(format!("Error: {error}"));
            }
            sleep(secs);
            post(c, "migration-finish", fields).map_err(lost)?;
            log(&format!(
                "The database was upgraded successfully to {version}"
            ));
            Ok(())
        }
        std::cmp::Ordering::Equal => {
            log("The database schema is up to date");
            Ok(())
        }
    }
}

/// Runs the container; returns the exit code. `argv` is the container's own command line
/// (a secret there is recorded as a leak).
pub(crate) fn run(
    version: &str,
    env: &dyn Fn(&str) -> Option<String>,
    argv: &[String],
    out: &mut dyn Write,
) -> i32 {
    let mut log = |line: &str| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    log(&format!(
        "Octopus Deploy Server {version} (octoup-sim container)"
    ));
    if !crate::version::is_valid(version) {
        log(&format!(
            "Error: {version:?} is not an Octopus Server version"
        ));
        return 1;
    }
    let settings = match settings(env) {
        Ok(s) => s,
        Err(e) => {
            log(&e);
            return 1;
        }
    };
    let c = &settings.connection;
    log(&format!(
        "Checking the database connection to {},{} (database {})",
        c.host, c.port, c.database
    ));
    let info = match connect(c, version, &settings.master_key) {
        Ok(info) => info,
        Err(e) => {
            log(&e);
            return 1;
        }
    };
    let database = info["database"].as_str().unwrap_or(&c.database).to_string();
    // A secret on the container's own command line is visible in `docker inspect` and ps.
    for (secret, name) in [
        (
            c.password.as_str(),
            "the SQL password of DB_CONNECTION_STRING",
        ),
        (settings.master_key.as_str(), "MASTER_KEY"),
        (settings.admin_api_key.as_str(), "ADMIN_API_KEY"),
    ] {
        if !secret.is_empty() && argv.iter().any(|a| a.contains(secret)) {
            let _ = post(
                c,
                "secret-leak",
                json!({
                    "place": "command line of the container",
                    "detail": format!("{name} was passed on the container's command line instead of its environment"),
                }),
            );
        }
    }
    if info["master_key_ok"] != Value::Bool(true) {
        log(
            "Error: the master key cannot decrypt this database: MASTER_KEY is not the master key of the installation this database belongs to",
        );
        return 1;
    }
    let schema = info["schema_version"].as_str().unwrap_or("").to_string();
    log(&format!(
        "Connected to database {database} (schema {schema})"
    ));
    let armed: Vec<String> = info["armed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if !armed.is_empty() {
        let what = armed.join("; ");
        log(&format!(
            "Warning: this database still has {what}; this server will act on them"
        ));
        let _ = post(c, "armed", json!({ "what": what }));
    }
    if let Err(e) = migrate(c, &info, &schema, version, &mut log) {
        log(&e);
        return 1;
    }
    log(&format!("Registering node {}", settings.node));
    if let Err(e) = post(c, "register-node", json!({ "node": settings.node })) {
        log(&format!("Error: lost the connection to SQL Server: {e}"));
        return 1;
    }
    let dir = std::env::temp_dir().join(format!("octoup-container-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = local_state(&dir, version, &settings, &info, &schema) {
        log(&format!("Error: {e}"));
        return 1;
    }
    let bind = std::net::SocketAddr::from(([0, 0, 0, 0], settings.port));
    let result = crate::server::serve_container(&dir, bind, || {
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "Web server is ready to process requests on http://0.0.0.0:{}",
            settings.port
        );
        let _ = out.flush();
    });
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("Error: {e:#}"));
            1
        }
    }
}

/// The one-node installation the container's API serves: version V, the copy's
/// installation id, license and rows, the installation's checks, spaces and machines.
fn local_state(
    dir: &std::path::Path,
    version: &str,
    settings: &Settings,
    info: &Value,
    original_schema: &str,
) -> Result<(), String> {
    let spec = Spec {
        time_scale: info["time_scale"]
            .as_f64()
            .filter(|t| *t > 0.0)
            .unwrap_or(1.0),
        version: version.to_string(),
        nodes: 1,
        ..Spec::default()
    };
    let mut secrets = Secrets::generate();
    secrets.admin_api_key = settings.admin_api_key.clone();
    secrets.master_key = settings.master_key.clone();
    let ports = Ports {
        feed: 0,
        nodes: vec![settings.port],
    };
    let mut state = State::new(&spec, &ports, secrets);
    if let Some(n) = state.nodes.first_mut() {
        n.name = settings.node.clone();
    }
    let data: OctopusData = serde_json::from_value(info["data"].clone()).unwrap_or_default();
    if !data.installation_id.is_empty() {
        state.installation_id = data.installation_id.clone();
    }
    if let Ok(license) = serde_json::from_value::<License>(info["license"].clone()) {
        state.database.license = license;
    }
    state.database.data = data;
    if let Ok(server) = serde_json::from_value(info["server"].clone()) {
        state.server = server;
    }
    // "Upgraded" means the schema differs from the one the copy had.
    state.server.original_schema = original_schema.to_string();
    if let Ok(spaces) = serde_json::from_value(info["spaces"].clone()) {
        state.spaces = spaces;
    }
    if let Ok(machines) = serde_json::from_value(info["machines"].clone()) {
        state.machines = machines;
    }
    Store::create(dir, state).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_with_synonyms_quotes_and_ignored_keys() {
        let c = parse_connection_string(
            "Data Source=10.0.0.1,41433; Initial Catalog=\"Octo;Copy\";uid=octoup;PWD='it''s';TrustServerCertificate=True;Encrypt=False;ConnectRetryCount=3",
        )
        .unwrap();
        assert_eq!(c.host, "10.0.0.1");
        assert_eq!(c.port, 41433);
        assert_eq!(c.database, "Octo;Copy");
        assert_eq!(c.user, "octoup");
        assert_eq!(c.password, "it's");
        assert_eq!(c.connect_timeout, None);
        let c = parse_connection_string(
            "server=tcp:sql01\\INST;DATABASE=x;User Id=u;Password=p;Connect Timeout=2",
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("sql01", 1433));
        assert_eq!(c.connect_timeout, Some(2));
        let c = parse_connection_string("Address=h,1;Database=d;User ID=u;Password=").unwrap();
        assert_eq!(c.password, "");
        for (bad, says) in [
            ("Database=d;User ID=u;Password=p", "no Server"),
            ("Server=h,1;User ID=u;Password=p", "no Database"),
            ("Server=h,1;Database=d;Password=p", "no User ID"),
            ("Server=h,1;Database=d;User ID=u", "no Password"),
            ("Server=h,x;Database=d;User ID=u;Password=p", "not a number"),
            (
                "Server=h,1;Database=\"d;User ID=u;Password=p",
                "no closing quote",
            ),
            ("Server;Database=d", "has no value"),
        ] {
            let e = parse_connection_string(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_environment_is_checked_like_the_vendors_image() {
        let base = [
            ("ACCEPT_EULA", "Y"),
            (
                "DB_CONNECTION_STRING",
                "Server=127.0.0.1,1;Database=d;User ID=u;Password=p",
            ),
            ("MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAA=="),
            ("ADMIN_API_KEY", "API-ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            ("OCTOPUS_SERVER_NODE_NAME", "rehearsal"),
        ];
        let with = |changes: &[(&str, Option<&str>)]| {
            let mut vars: Vec<(String, String)> = base
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (k, v) in changes {
                vars.retain(|(x, _)| x != k);
                if let Some(v) = v {
                    vars.push((k.to_string(), v.to_string()));
                }
            }
            settings(&|name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        let s = with(&[]).unwrap();
        assert_eq!(s.node, "rehearsal");
        assert_eq!(s.port, 8080);
        assert_eq!(
            with(&[("OCTOUP_SIM_CONTAINER_PORT", Some("18080"))])
                .unwrap()
                .port,
            18080
        );
        assert_eq!(with(&[("ACCEPT_EULA", Some("N"))]).unwrap_err(), EULA);
        assert_eq!(with(&[("ACCEPT_EULA", None)]).unwrap_err(), EULA);
        for (k, v, says) in [
            (
                "DB_CONNECTION_STRING",
                None,
                "DB_CONNECTION_STRING is not set",
            ),
            ("MASTER_KEY", None, "MASTER_KEY is not set"),
            ("MASTER_KEY", Some("not base64!"), "not valid base64"),
            ("ADMIN_API_KEY", None, "ADMIN_API_KEY must be"),
            ("ADMIN_API_KEY", Some("API-short"), "ADMIN_API_KEY must be"),
            (
                "ADMIN_API_KEY",
                Some("API-abcdefghijklmnopqrstuvwxyz"),
                "ADMIN_API_KEY must be",
            ),
        ] {
            let e = with(&[(k, v)]).unwrap_err();
            assert!(e.contains(says), "{k}={v:?}: {e}");
        }
    }
}
