//! sqlcmd's own command line: `-S`, `-U`, `-P`, `-E`, `-b`, `-Q`, and every other option
//! sqlcmd has, accepted and ignored.

#[derive(Debug, Default)]
pub(super) struct Args {
    pub server: String,
    /// `-d`: the database in context at login.
    pub database: Option<String>,
    pub user: Option<String>,
    pub password_arg: Option<String>,
    pub exit_on_error: bool,
    pub query: Option<String>,
    /// `-h N`: rows per header; `-1` prints none.
    pub headers: Option<i64>,
    /// `-W`: trailing spaces removed (no column padding).
    pub trim: bool,
    /// `-s C`: the column separator (default a space).
    pub separator: Option<String>,
    /// `-v NAME=value`: scripting variables (before the environment's).
    pub variables: Vec<(String, String)>,
    /// `-x`: `$(NAME)` is left as it is.
    pub no_variables: bool,
}

/// Replaces each `$(NAME)` as sqlcmd does: a `-v` variable, else the environment variable;
/// `Err` with sqlcmd's message for one that neither defines.
pub(super) fn substitute(
    query: &str,
    variables: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("$(") {
        let Some(len) = rest[start + 2..].find(')') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let value = variables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .or_else(|| env(name))
            .ok_or_else(|| format!("'{name}' scripting variable not defined."))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn parse_args(args: &[String]) -> Result<Args, String> {
    // Options with a value; the value may be attached (`-Sserver`) or the next argument.
    const WITH_VALUE: &[char] = &[
        'S', 'd', 'U', 'P', 'Q', 'q', 'h', 's', 't', 'l', 'V', 'r', 'w', 'f', 'y', 'Y', 'H', 'a',
        'c', 'o', 'i', 'v', 'A', 'L', 'K', 'M', 'G',
    ];
    const FLAGS: &[char] = &[
        'E', 'b', 'W', 'C', 'N', 'I', 'X', 'e', 'p', 'k', 'u', 'x', 'R', 'z', 'Z', 'j', 'm',
    ];
    let mut parsed = Args::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix('-').or_else(|| arg.strip_prefix('/')) else {
            return Err(format!(
                "'{arg}': Unexpected argument. Enter '-?' for help."
            ));
        };
        let mut chars = body.chars();
        let Some(opt) = chars.next() else {
            return Err(format!("'{arg}': Unknown Option. Enter '-?' for help."));
        };
        let rest: String = chars.collect();
        let value = if WITH_VALUE.contains(&opt) {
            if !rest.is_empty() {
                rest
            } else if let Some(v) = args.get(i) {
                i += 1;
                v.clone()
            } else {
                return Err(format!("'-{opt}': Missing argument. Enter '-?' for help."));
            }
        } else if FLAGS.contains(&opt) && rest.is_empty() {
            String::new()
        } else {
            return Err(format!("'{arg}': Unknown Option. Enter '-?' for help."));
        };
        match opt {
            'S' => parsed.server = value,
            'd' => parsed.database = Some(value),
            'U' => parsed.user = Some(value),
            'P' => parsed.password_arg = Some(value),
            'b' => parsed.exit_on_error = true,
            'Q' | 'q' => parsed.query = Some(value),
            'h' => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("'-h {value}': Argument must be an integer between -1 and 2147483647. Enter '-?' for help.")
                })?;
                if n == 0 || n < -1 {
                    return Err(format!(
                        "'-h {value}': Argument must be an integer between -1 and 2147483647. Enter '-?' for help."
                    ));
                }
                parsed.headers = Some(n);
            }
            'W' => parsed.trim = true,
            'x' => parsed.no_variables = true,
            'v' => {
                let Some((name, value)) = value.split_once('=') else {
                    return Err(format!(
                        "'-v {value}': Invalid argument. Enter '-?' for help."
                    ));
                };
                let value = value.trim_matches('"').to_string();
                parsed.variables.push((name.to_string(), value));
            }
            's' => parsed.separator = Some(value),
            'i' => {
                return Err("'-i': input files are not simulated by octoup-sim; use -Q".to_string());
            }
            _ => {}
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlcmd_arguments() {
        let a: Vec<String> = [
            "-S",
            "127.0.0.1,1433",
            "-dmaster",
            "-U",
            "octoup",
            "-b",
            "-Q",
            "SELECT @@VERSION",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_args(&a).unwrap();
        assert_eq!(p.server, "127.0.0.1,1433");
        assert_eq!(p.user.as_deref(), Some("octoup"));
        assert!(p.exit_on_error);
        assert!(parse_args(&["-Z9".to_string()]).is_err());
        let o: Vec<String> = ["-h", "-1", "-W", "-s", "|"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_args(&o).unwrap();
        assert_eq!(
            (p.headers, p.trim, p.separator.as_deref()),
            (Some(-1), true, Some("|"))
        );
        assert!(parse_args(&["-h".to_string(), "0".to_string()]).is_err());
        assert!(parse_args(&["-S".to_string()]).is_err());
        let v: Vec<String> = ["-v", "A=1", "-x"].iter().map(|s| s.to_string()).collect();
        let p = parse_args(&v).unwrap();
        assert_eq!(p.variables, vec![("A".to_string(), "1".to_string())]);
        assert!(p.no_variables);
    }

    #[test]
    fn scripting_variables_come_from_v_then_the_environment() {
        let env = |n: &str| (n == "OCTOUP_SAS_TOKEN").then(|| "sv=1&sig=x".to_string());
        let vars = vec![("who".to_string(), "me".to_string())];
        assert_eq!(
            substitute("SECRET = N'$(OCTOUP_SAS_TOKEN)', $(WHO)", &vars, &env).unwrap(),
            "SECRET = N'sv=1&sig=x', me"
        );
        assert_eq!(
            substitute("x $(NOPE) y", &vars, &env).unwrap_err(),
            "'NOPE' scripting variable not defined."
        );
        assert_eq!(substitute("a $( b", &vars, &env).unwrap(), "a $( b");
    }
}
