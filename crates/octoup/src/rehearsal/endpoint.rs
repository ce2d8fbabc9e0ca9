//! How the rehearsal container reaches the SQL Server: its address and login (from
//! `[rehearsal]`, else from the sqlcmd argv's `-S` and `-U`), and the connection string the
//! container is given, through its environment only.

use crate::config::{Config, Secret, read_sql_password, sqlcmd_option as option};

use super::RehearsalError;

/// The SQL Server as the container must reach it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqlEndpoint {
    pub host: String,
    pub port: u16,
    pub login: String,
    pub password: Secret,
}

/// `host`, `host,port`, `tcp:host,port`; a named instance (`host\name`) needs the SQL
/// Browser, which the relay cannot carry, so it must be given with its port.
pub(crate) fn parse_server(server: &str) -> Result<(String, u16), String> {
    let s = server.trim();
    let s = s.strip_prefix("tcp:").unwrap_or(s);
    let (host, port) = match s.rsplit_once(',') {
        Some((h, p)) => (
            h.trim(),
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{server:?}: the port after the comma is not a number"))?,
        ),
        None => (s, 1433),
    };
    if host.is_empty() {
        return Err(format!("{server:?} names no host"));
    }
    if host.contains('\\') && !s.contains(',') {
        return Err(format!(
            "{server:?} is a named instance: give its TCP port as host,port in [rehearsal] sql_server"
        ));
    }
    let host = host.split('\\').next().unwrap_or(host);
    let host = match host {
        "." | "(local)" | "localhost" => "127.0.0.1",
        h => h,
    };
    Ok((host.to_string(), port))
}

/// The sqlcmd argv of the SQL Server that holds the copy: `[rehearsal.sql]`'s, else
/// production's.
fn copy_sqlcmd(config: &Config) -> &[String] {
    match &config.rehearsal.sql {
        Some(sql) => &sql.sqlcmd,
        None => &config.database.sqlcmd,
    }
}

/// The SQL Server as the rehearsal server reaches it: `[rehearsal] sql_server`, else
/// `[rehearsal.sql] server`, else the `-S` of the sqlcmd that reaches the copy.
pub(crate) fn server(config: &Config) -> Result<(String, u16), RehearsalError> {
    let server = config
        .rehearsal
        .sql_server
        .clone()
        .or_else(|| config.rehearsal.sql.as_ref().and_then(|s| s.server.clone()))
        .or_else(|| option(copy_sqlcmd(config), "-S").map(str::to_string))
        .ok_or_else(|| {
            RehearsalError::Setup(
                "the rehearsal server cannot be told where the SQL Server is: set [rehearsal] sql_server = \"host,port\" (sqlcmd's argv has no -S)".into(),
            )
        })?;
    parse_server(&server).map_err(|e| RehearsalError::Setup(format!("[rehearsal] sql_server: {e}")))
}

/// A connection string with `Integrated Security`: the rehearsal server's own Windows
/// account logs in, so it holds no secret.
pub(crate) fn integrated_connection_string(
    host: &str,
    port: u16,
    database: &str,
    options: &str,
) -> String {
    let mut s = format!(
        "Server={},{port};Database={};Integrated Security=True;",
        quote(host),
        quote(database)
    );
    push_options(&mut s, options);
    s
}

fn push_options(s: &mut String, options: &str) {
    let options = options.trim().trim_matches(';');
    if !options.is_empty() {
        s.push_str(options);
        s.push(';');
    }
}

impl SqlEndpoint {
    pub fn from_config(config: &Config) -> Result<SqlEndpoint, RehearsalError> {
        let r = &config.rehearsal;
        let separate = r.sql.as_ref();
        let (host, port) = server(config)?;
        let login = r
            .sql_login
            .clone()
            .or_else(|| separate.and_then(|s| s.login.clone()))
            .or_else(|| option(copy_sqlcmd(config), "-U").map(str::to_string))
            .ok_or_else(|| {
                RehearsalError::Setup(
                    "the rehearsal container needs a SQL login (Windows authentication cannot reach SQL Server from a Linux container): set [rehearsal] sql_login and sql_password_file".into(),
                )
            })?;
        let file = r.sql_password_file.as_ref().or(match separate {
            Some(s) => s.password_file.as_ref(),
            None => config.database.password_file.as_ref(),
        });
        let password = match file {
            Some(path) => read_sql_password(path)?,
            None => {
                return Err(RehearsalError::Setup(format!(
                    "no password for the rehearsal's SQL login: set [rehearsal] sql_password_file (or {} password_file)",
                    if separate.is_some() {
                        "[rehearsal.sql]"
                    } else {
                        "[database]"
                    }
                )));
            }
        };
        Ok(SqlEndpoint {
            host,
            port,
            login,
            password,
        })
    }

    /// Whether the host is a name (the container resolves it to the relay with
    /// `--add-host`, so a TLS certificate for that name still validates).
    pub fn is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }

    /// The connection string for the copy, reaching the SQL Server at `host,port`.
    pub fn connection_string(
        &self,
        host: &str,
        port: u16,
        database: &str,
        options: &str,
    ) -> Secret {
        let mut s = format!(
            "Server={},{port};Database={};User ID={};Password={};",
            quote(host),
            quote(database),
            quote(&self.login),
            quote(self.password.expose())
        );
        push_options(&mut s, options);
        Secret::new(s)
    }
}

/// A connection-string value: quoted with `"` (inner `"` doubled) when it holds a
/// separator, a quote or spaces at its ends.
fn quote(value: &str) -> String {
    if value.contains([';', '"', '\'', '=']) || value.trim() != value {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_read_the_way_sqlcmd_reads_it() {
        assert_eq!(parse_server("sql01").unwrap(), ("sql01".into(), 1433));
        assert_eq!(
            parse_server("tcp:sql01.corp,14330").unwrap(),
            ("sql01.corp".into(), 14330)
        );
        assert_eq!(
            parse_server("127.0.0.1,41005").unwrap(),
            ("127.0.0.1".into(), 41005)
        );
        assert_eq!(parse_server("(local)").unwrap(), ("127.0.0.1".into(), 1433));
        assert_eq!(
            parse_server("sql01\\OCTO,1500").unwrap(),
            ("sql01".into(), 1500)
        );
        assert!(
            parse_server("sql01\\OCTO")
                .unwrap_err()
                .contains("named instance")
        );
        assert!(parse_server("sql01,x").is_err());
        assert!(parse_server(",1433").is_err());
    }

    #[test]
    fn options_are_read_attached_or_apart() {
        let argv: Vec<String> = ["sqlcmd", "-S", "a,1", "-Ubob", "-b"]
            .map(String::from)
            .to_vec();
        assert_eq!(option(&argv, "-S"), Some("a,1"));
        assert_eq!(option(&argv, "-U"), Some("bob"));
        assert_eq!(option(&argv, "-P"), None);
    }

    #[test]
    fn the_connection_string_quotes_what_would_break_it() {
        let e = SqlEndpoint {
            host: "sql01".into(),
            port: 1433,
            login: "octo".into(),
            password: Secret::new("p;w\"d"),
        };
        let s = e.connection_string("172.18.0.1", 40000, "Copy_1", "Encrypt=True;");
        assert_eq!(
            s.expose(),
            "Server=172.18.0.1,40000;Database=Copy_1;User ID=octo;Password=\"p;w\"\"d\";Encrypt=True;"
        );
    }
}
