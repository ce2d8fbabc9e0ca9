//! T-SQL as far as the simulator understands it: a tokenizer and a parser for the
//! statements listed in the module above; anything else is a syntax error near a token.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
}

impl Token {
    fn shown(&self) -> String {
        match self {
            Token::Word(w) | Token::Number(w) => w.clone(),
            Token::Ident(i) => i.clone(),
            Token::Str(s) => s.clone(),
            Token::Punct(c) => c.to_string(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

/// The text of a quoted identifier or string from `chars[*i..]` up to `close` (a doubled
/// `close` stands for one), leaving `*i` after it; `Err` with what was read when it is not
/// closed.
fn quoted(chars: &[char], i: &mut usize, close: char) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.get(*i) {
            None => return Err(text),
            Some(&c) if c == close && chars.get(*i + 1) == Some(&close) => {
                text.push(close);
                *i += 2;
            }
            Some(&c) if c == close => {
                *i += 1;
                return Ok(text);
            }
            Some(&c) => {
                text.push(c);
                *i += 1;
            }
        }
    }
}

/// Splits T-SQL into tokens; `Err` carries the text near the problem.
fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '[' {
            i += 1;
            let ident = quoted(&chars, &mut i, ']').map_err(|part| format!("[{part}"))?;
            tokens.push(Token::Ident(ident));
        } else if c == '\'' || ((c == 'N' || c == 'n') && chars.get(i + 1) == Some(&'\'')) {
            i += if c == '\'' { 1 } else { 2 };
            let text = quoted(&chars, &mut i, '\'').map_err(|part| format!("'{part}"))?;
            tokens.push(Token::Str(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '@' || c == '#' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_@#$".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if "=,;()".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(c.to_string());
        }
    }
    Ok(tokens)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Statement {
    Backup {
        database: String,
        path: String,
        options: Vec<String>,
    },
    VerifyOnly {
        path: String,
    },
    Restore {
        database: String,
        path: String,
        options: Vec<String>,
    },
    SelectVersion,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn near(&self) -> String {
        self.peek()
            .map(Token::shown)
            .unwrap_or_else(|| self.tokens.last().map(Token::shown).unwrap_or_default())
    }

    fn keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.near())
        }
    }

    fn punct(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(&Token::Punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.near())
        }
    }

    /// A database name: `[bracketed]` or a bare word.
    fn name(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Ident(n)) | Some(Token::Word(n)) => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.near()),
        }
    }

    /// `DISK = N'path'`
    fn disk(&mut self) -> Result<String, String> {
        self.keyword("DISK")?;
        self.punct('=')?;
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.near()),
        }
    }

    /// `WITH opt [= value], ...`, upper-cased option names; only `allowed` ones.
    fn with(&mut self, allowed: &[&str]) -> Result<Vec<String>, String> {
        let mut options = Vec::new();
        if !self.peek().is_some_and(|t| t.is_kw("WITH")) {
            return Ok(options);
        }
        self.pos += 1;
        loop {
            let Some(Token::Word(w)) = self.peek().cloned() else {
                return Err(self.near());
            };
            let upper = w.to_ascii_uppercase();
            if !allowed.contains(&upper.as_str()) {
                return Err(w);
            }
            self.pos += 1;
            if upper == "STATS" && self.peek() == Some(&Token::Punct('=')) {
                self.pos += 1;
                match self.peek() {
                    Some(Token::Number(_)) => self.pos += 1,
                    _ => return Err(self.near()),
                }
            }
            options.push(upper);
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                return Ok(options);
            }
        }
    }

    fn end(&mut self) -> Result<(), String> {
        while self.peek() == Some(&Token::Punct(';')) {
            self.pos += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(t.shown()),
        }
    }
}

/// Parses one statement; `Err` is the text near the syntax error.
pub(super) fn parse_statement(sql: &str) -> Result<Statement, String> {
    let tokens = tokenize(sql)?;
    let mut p = Parser { tokens, pos: 0 };
    let first = p.peek().cloned().ok_or_else(|| sql.trim().to_string())?;
    let statement = if first.is_kw("BACKUP") {
        p.pos += 1;
        p.keyword("DATABASE")?;
        let database = p.name()?;
        p.keyword("TO")?;
        let path = p.disk()?;
        let options = p.with(&[
            "COPY_ONLY",
            "CHECKSUM",
            "NO_CHECKSUM",
            "COMPRESSION",
            "NO_COMPRESSION",
            "INIT",
            "NOINIT",
            "FORMAT",
            "NOFORMAT",
            "STATS",
            "SKIP",
            "NOSKIP",
        ])?;
        Statement::Backup {
            database,
            path,
            options,
        }
    } else if first.is_kw("RESTORE") {
        p.pos += 1;
        if p.peek().is_some_and(|t| t.is_kw("VERIFYONLY")) {
            p.pos += 1;
            p.keyword("FROM")?;
            let path = p.disk()?;
            p.with(&["CHECKSUM", "NO_CHECKSUM", "STATS"])?;
            Statement::VerifyOnly { path }
        } else {
            p.keyword("DATABASE")?;
            let database = p.name()?;
            p.keyword("FROM")?;
            let path = p.disk()?;
            let options = p.with(&["REPLACE", "RECOVERY", "STATS", "CHECKSUM"])?;
            Statement::Restore {
                database,
                path,
                options,
            }
        }
    } else if first.is_kw("SELECT") {
        p.pos += 1;
        if p.peek().is_some_and(|t| t.is_kw("@@VERSION")) {
            p.pos += 1;
            Statement::SelectVersion
        } else {
            return Err(p.near());
        }
    } else {
        return Err(first.shown());
    };
    p.end()?;
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_statements_octoup_sends() {
        assert_eq!(
            parse_statement("BACKUP DATABASE [Octopus]]Deploy] TO DISK = N'C:\\b\\it''s.bak' WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT, STATS = 10;").unwrap(),
            Statement::Backup {
                database: "Octopus]Deploy".into(),
                path: "C:\\b\\it's.bak".into(),
                options: vec!["COPY_ONLY".into(), "CHECKSUM".into(), "COMPRESSION".into(), "INIT".into(), "STATS".into()],
            }
        );
        assert_eq!(
            parse_statement("restore verifyonly from disk = 'x.bak'").unwrap(),
            Statement::VerifyOnly {
                path: "x.bak".into()
            }
        );
        assert_eq!(
            parse_statement(
                "RESTORE DATABASE OctopusDeploy FROM DISK = N'x.bak' WITH REPLACE, RECOVERY"
            )
            .unwrap(),
            Statement::Restore {
                database: "OctopusDeploy".into(),
                path: "x.bak".into(),
                options: vec!["REPLACE".into(), "RECOVERY".into()]
            }
        );
        assert_eq!(
            parse_statement("SELECT @@VERSION").unwrap(),
            Statement::SelectVersion
        );
    }

    #[test]
    fn rejects_everything_else_naming_the_token() {
        assert_eq!(
            parse_statement("DROP DATABASE [OctopusDeploy]").unwrap_err(),
            "DROP"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p' WITH SHRINK").unwrap_err(),
            "SHRINK"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p' GO").unwrap_err(),
            "GO"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p").unwrap_err(),
            "'p"
        );
        assert!(parse_statement("BACKUP DATABASE [x] TO DISK = N'p'; SELECT 1").is_err());
    }
}
