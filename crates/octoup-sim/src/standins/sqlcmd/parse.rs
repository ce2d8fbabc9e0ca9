//! T-SQL as far as the simulator understands it: a tokenizer and a parser for the
//! statements listed in the module above (`BACKUP`, `RESTORE`, `SET NOCOUNT`, `USE`, and a
//! `SELECT` of expressions from catalog views); anything else is a syntax error near a token.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
    /// A comparison: `=` is a `Punct`; `<>`, `!=`, `<`, `>`, `<=`, `>=` are these.
    Op(String),
}

impl Token {
    fn shown(&self) -> String {
        match self {
            Token::Word(w) | Token::Number(w) => w.clone(),
            Token::Ident(i) => i.clone(),
            Token::Str(s) => s.clone(),
            Token::Punct(c) => c.to_string(),
            Token::Op(o) => o.clone(),
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
        } else if "=,;().*".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else if "<>!".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["<>", "!=", "<=", ">="].contains(&two.as_str()) {
                two
            } else if c == '!' {
                return Err(c.to_string());
            } else {
                c.to_string()
            };
            i += op.len();
            tokens.push(Token::Op(op));
        } else {
            return Err(c.to_string());
        }
    }
    Ok(tokens)
}

/// Where a backup goes or a restore reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    Disk,
    Url,
}

/// `WITH` options: upper-cased names and their values (`STATS = 5`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Options(pub Vec<(String, Option<String>)>);

impl Options {
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub fn number(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| v.parse().ok())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Statement {
    Backup {
        database: String,
        media: Media,
        paths: Vec<String>,
        options: Options,
    },
    VerifyOnly {
        media: Media,
        paths: Vec<String>,
    },
    Restore {
        database: String,
        media: Media,
        paths: Vec<String>,
        options: Options,
        /// `MOVE N'logical' TO N'physical'` options, in order.
        moves: Vec<(String, String)>,
    },
    /// `RESTORE FILELISTONLY FROM DISK|URL = …`.
    FileListOnly {
        media: Media,
        paths: Vec<String>,
    },
    /// `DELETE [FROM] table [WHERE …]` (table: lower-cased dotted parts).
    Delete {
        table: Vec<String>,
        filter: Vec<Cond>,
    },
    /// `UPDATE table SET column = expr, … [WHERE …]`.
    Update {
        table: Vec<String>,
        sets: Vec<(String, Expr)>,
        filter: Vec<Cond>,
    },
    /// `IF EXISTS (SELECT …) statement`.
    IfExists {
        query: Select,
        then: Box<Statement>,
    },
    /// `RESTORE DATABASE [db] FROM DATABASE_SNAPSHOT = N'snap'`.
    Revert {
        database: String,
        snapshot: String,
    },
    /// `CREATE DATABASE [name] ON (NAME = l, FILENAME = N'f'), … AS SNAPSHOT OF [source]`.
    CreateSnapshot {
        name: String,
        files: Vec<(String, String)>,
        source: String,
    },
    /// `CREATE DATABASE [name] AS COPY OF [source]`.
    CreateCopy {
        name: String,
        source: String,
    },
    Drop(String),
    /// `ALTER DATABASE [from] MODIFY NAME = [to]`.
    Rename {
        from: String,
        to: String,
    },
    /// `CREATE|ALTER CREDENTIAL [name] WITH IDENTITY = N'…', SECRET = N'…'`.
    Credential {
        alter: bool,
        name: String,
        identity: String,
        secret: String,
    },
    /// `EXEC proc @name = value, …` (procedure lower-cased and dotted).
    Exec {
        procedure: String,
        args: Vec<(Option<String>, Expr)>,
    },
    /// `SET NOCOUNT ON|OFF`.
    SetNocount(bool),
    /// `USE [db]`.
    Use(String),
    Select(Select),
}

/// An expression of a select list or a condition.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Null,
    Number(String),
    Str(String),
    /// `@@VERSION` and friends.
    Global(String),
    /// A column, optionally qualified by a table alias (lower-cased).
    Column(Option<String>, String),
    /// A function call (name upper-cased); `CAST(x AS t)` is `CAST(x)`.
    Call(String, Vec<Expr>),
}

/// `left op right`, or `left IS [NOT] NULL` (`op` "IS NULL" / "IS NOT NULL"), or `left IN
/// (a, b, …)` (`op` "IN", `right` a `Call("IN", [a, b, …])`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cond {
    pub left: Expr,
    pub op: String,
    pub right: Expr,
}

/// A table or table-valued function in FROM: `sys.columns AS c`, `CROSS APPLY
/// sys.dm_os_volume_stats(a, b) AS v`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Source {
    /// Lower-cased, dotted (`sys.columns`).
    pub name: String,
    pub args: Option<Vec<Expr>>,
    pub alias: String,
    pub on: Vec<Cond>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Select {
    /// Each item and its column name (the alias, the column's name, or none).
    pub items: Vec<(Expr, String)>,
    pub from: Vec<Source>,
    pub filter: Vec<Cond>,
    /// `GROUP BY` expressions (with `COUNT(*)` in the list, one group of all rows if none).
    pub group_by: Vec<Expr>,
}

const CLAUSE_WORDS: &[&str] = &[
    "FROM", "WHERE", "ORDER", "GROUP", "JOIN", "INNER", "CROSS", "ON", "AND", "AS", "BY", "IS",
    "IN", "SET",
];

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

    /// A string literal.
    fn string(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.near()),
        }
    }

    /// `DISK = N'a' [, DISK = N'b' …]` or the same with `URL`.
    fn media(&mut self) -> Result<(Media, Vec<String>), String> {
        let media = if self.at_kw("URL") {
            Media::Url
        } else {
            Media::Disk
        };
        let kw = if media == Media::Url { "URL" } else { "DISK" };
        let mut paths = Vec::new();
        loop {
            self.keyword(kw)?;
            self.punct('=')?;
            paths.push(self.string()?);
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                return Ok((media, paths));
            }
        }
    }

    /// `WITH opt [= value], ...`, upper-cased option names; only `allowed` ones.
    fn with(&mut self, allowed: &[&str]) -> Result<Options, String> {
        let mut options = Vec::new();
        if !self.at_kw("WITH") {
            return Ok(Options(options));
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
            let mut value = None;
            if self.peek() == Some(&Token::Punct('=')) {
                self.pos += 1;
                match self.peek().cloned() {
                    Some(Token::Number(n)) | Some(Token::Str(n)) => {
                        self.pos += 1;
                        value = Some(n);
                    }
                    _ => return Err(self.near()),
                }
            }
            options.push((upper, value));
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                return Ok(Options(options));
            }
        }
    }

    /// An optional `WHERE c AND …`.
    fn filter(&mut self) -> Result<Vec<Cond>, String> {
        if self.at_kw("WHERE") {
            self.pos += 1;
            self.conds()
        } else {
            Ok(Vec::new())
        }
    }

    /// RESTORE's `WITH`: `REPLACE`, `RECOVERY`, `STATS [= n]`, `CHECKSUM` and `MOVE N'l' TO
    /// N'p'` (kept apart, in order).
    fn restore_with(&mut self) -> Result<(Options, Vec<(String, String)>), String> {
        let mut options = Vec::new();
        let mut moves = Vec::new();
        if !self.at_kw("WITH") {
            return Ok((Options(options), moves));
        }
        self.pos += 1;
        loop {
            if self.at_kw("MOVE") {
                self.pos += 1;
                let logical = self.string()?;
                self.keyword("TO")?;
                moves.push((logical, self.string()?));
            } else {
                let Some(Token::Word(w)) = self.peek().cloned() else {
                    return Err(self.near());
                };
                let upper = w.to_ascii_uppercase();
                if !["REPLACE", "RECOVERY", "STATS", "CHECKSUM"].contains(&upper.as_str()) {
                    return Err(w);
                }
                self.pos += 1;
                let mut value = None;
                if self.peek() == Some(&Token::Punct('=')) {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Token::Number(n)) => {
                            self.pos += 1;
                            value = Some(n);
                        }
                        _ => return Err(self.near()),
                    }
                }
                options.push((upper, value));
            }
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                return Ok((Options(options), moves));
            }
        }
    }

    fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }

    /// A name part: a bare word or a `[bracketed]` identifier.
    fn part(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Word(w)) if !CLAUSE_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.pos += 1;
                Ok(w)
            }
            Some(Token::Ident(n)) => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.near()),
        }
    }

    /// `a.b.c` (lower-cased parts).
    fn dotted(&mut self) -> Result<Vec<String>, String> {
        let mut parts = vec![self.part()?];
        while self.peek() == Some(&Token::Punct('.')) {
            self.pos += 1;
            parts.push(self.part()?);
        }
        Ok(parts.into_iter().map(|p| p.to_ascii_lowercase()).collect())
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        self.punct('(')?;
        let mut args = Vec::new();
        if self.peek() == Some(&Token::Punct(')')) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                self.punct(')')?;
                return Ok(args);
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.peek().cloned() {
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(Expr::Number(n))
            }
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Some(t) if t.is_kw("NULL") => {
                self.pos += 1;
                Ok(Expr::Null)
            }
            Some(Token::Word(w)) if w.starts_with("@@") => {
                self.pos += 1;
                Ok(Expr::Global(w.to_ascii_uppercase()))
            }
            Some(t) if t.is_kw("CAST") => {
                self.pos += 1;
                self.punct('(')?;
                let inner = self.expr()?;
                self.keyword("AS")?;
                self.dotted()?;
                if self.peek() == Some(&Token::Punct('(')) {
                    self.args()?;
                }
                self.punct(')')?;
                Ok(Expr::Call("CAST".into(), vec![inner]))
            }
            Some(Token::Word(_)) | Some(Token::Ident(_)) => {
                let mut parts = self.dotted()?;
                if self.peek() == Some(&Token::Punct('(')) {
                    let name = parts.join(".").to_ascii_uppercase();
                    if name == "COUNT" && self.tokens.get(self.pos + 1) == Some(&Token::Punct('*'))
                    {
                        self.pos += 2;
                        self.punct(')')?;
                        return Ok(Expr::Call(name, Vec::new()));
                    }
                    let args = self.args()?;
                    return Ok(Expr::Call(name, args));
                }
                let column = parts.pop().unwrap_or_default();
                Ok(Expr::Column(parts.pop(), column))
            }
            _ => Err(self.near()),
        }
    }

    fn cond(&mut self) -> Result<Cond, String> {
        let left = self.expr()?;
        if self.at_kw("IS") {
            self.pos += 1;
            let not = self.at_kw("NOT");
            if not {
                self.pos += 1;
            }
            self.keyword("NULL")?;
            let op = if not { "IS NOT NULL" } else { "IS NULL" };
            return Ok(Cond {
                left,
                op: op.into(),
                right: Expr::Null,
            });
        }
        if self.at_kw("IN") {
            self.pos += 1;
            let list = self.args()?;
            return Ok(Cond {
                left,
                op: "IN".into(),
                right: Expr::Call("IN".into(), list),
            });
        }
        let op = match self.peek().cloned() {
            Some(Token::Punct('=')) => "=".to_string(),
            Some(Token::Op(o)) => o,
            _ => return Err(self.near()),
        };
        self.pos += 1;
        let right = self.expr()?;
        Ok(Cond { left, op, right })
    }

    fn conds(&mut self) -> Result<Vec<Cond>, String> {
        let mut conds = vec![self.cond()?];
        while self.at_kw("AND") {
            self.pos += 1;
            conds.push(self.cond()?);
        }
        Ok(conds)
    }

    /// An optional `[AS] alias`.
    fn alias(&mut self) -> Result<Option<String>, String> {
        if self.at_kw("AS") {
            self.pos += 1;
            return self.part().map(Some);
        }
        match self.peek() {
            Some(Token::Word(w)) if !CLAUSE_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.part().map(Some)
            }
            _ => Ok(None),
        }
    }

    fn source(&mut self) -> Result<Source, String> {
        let name = self.dotted()?.join(".");
        let args = if self.peek() == Some(&Token::Punct('(')) {
            Some(self.args()?)
        } else {
            None
        };
        let alias = self
            .alias()?
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_else(|| name.rsplit('.').next().unwrap_or("").to_string());
        Ok(Source {
            name,
            args,
            alias,
            on: Vec::new(),
        })
    }

    fn select(&mut self) -> Result<Select, String> {
        let mut items = Vec::new();
        loop {
            let expr = self.expr()?;
            let name = match self.alias()? {
                Some(a) => a,
                None => match &expr {
                    Expr::Column(_, c) => c.clone(),
                    _ => String::new(),
                },
            };
            items.push((expr, name));
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                break;
            }
        }
        let mut from = Vec::new();
        if self.at_kw("FROM") {
            self.pos += 1;
            from.push(self.source()?);
            loop {
                if self.at_kw("JOIN") || self.at_kw("INNER") {
                    if self.at_kw("INNER") {
                        self.pos += 1;
                    }
                    self.keyword("JOIN")?;
                    let mut s = self.source()?;
                    self.keyword("ON")?;
                    s.on = self.conds()?;
                    from.push(s);
                } else if self.at_kw("CROSS") {
                    self.pos += 1;
                    self.keyword("APPLY")?;
                    from.push(self.source()?);
                } else {
                    break;
                }
            }
        }
        let filter = if self.at_kw("WHERE") {
            self.pos += 1;
            self.conds()?
        } else {
            Vec::new()
        };
        let mut group_by = Vec::new();
        if self.at_kw("GROUP") {
            self.pos += 1;
            self.keyword("BY")?;
            loop {
                group_by.push(self.expr()?);
                if self.peek() == Some(&Token::Punct(',')) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        if self.at_kw("ORDER") {
            self.pos += 1;
            self.keyword("BY")?;
            loop {
                self.expr()?;
                if self.at_kw("ASC") || self.at_kw("DESC") {
                    self.pos += 1;
                }
                if self.peek() == Some(&Token::Punct(',')) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        Ok(Select {
            items,
            from,
            filter,
            group_by,
        })
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
#[cfg(test)]
pub(super) fn parse_statement(sql: &str) -> Result<Statement, String> {
    let tokens = tokenize(sql)?;
    let mut p = Parser { tokens, pos: 0 };
    let statement = statement(&mut p, sql)?;
    p.end()?;
    Ok(statement)
}

/// Parses a batch: statements separated by `;`. `Err` is the text near the syntax error.
pub(super) fn parse_batch(sql: &str) -> Result<Vec<Statement>, String> {
    let tokens = tokenize(sql)?;
    let mut statements = Vec::new();
    for chunk in tokens.split(|t| *t == Token::Punct(';')) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Parser {
            tokens: chunk.to_vec(),
            pos: 0,
        };
        statements.push(statement(&mut p, sql)?);
        p.end()?;
    }
    if statements.is_empty() {
        return Err(sql.trim().to_string());
    }
    Ok(statements)
}

const BACKUP_OPTIONS: &[&str] = &[
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
    "MAXTRANSFERSIZE",
    "BUFFERCOUNT",
    "BLOCKSIZE",
];

fn statement(p: &mut Parser, sql: &str) -> Result<Statement, String> {
    let first = p.peek().cloned().ok_or_else(|| sql.trim().to_string())?;
    p.pos += 1;
    let statement = if first.is_kw("BACKUP") {
        p.keyword("DATABASE")?;
        let database = p.name()?;
        p.keyword("TO")?;
        let (media, paths) = p.media()?;
        let options = p.with(BACKUP_OPTIONS)?;
        Statement::Backup {
            database,
            media,
            paths,
            options,
        }
    } else if first.is_kw("RESTORE") {
        if p.at_kw("VERIFYONLY") {
            p.pos += 1;
            p.keyword("FROM")?;
            let (media, paths) = p.media()?;
            p.with(&["CHECKSUM", "NO_CHECKSUM", "STATS"])?;
            Statement::VerifyOnly { media, paths }
        } else if p.at_kw("FILELISTONLY") {
            p.pos += 1;
            p.keyword("FROM")?;
            let (media, paths) = p.media()?;
            Statement::FileListOnly { media, paths }
        } else {
            p.keyword("DATABASE")?;
            let database = p.name()?;
            p.keyword("FROM")?;
            if p.at_kw("DATABASE_SNAPSHOT") {
                p.pos += 1;
                p.punct('=')?;
                let snapshot = match p.peek().cloned() {
                    Some(Token::Str(s)) => {
                        p.pos += 1;
                        s
                    }
                    _ => p.name()?,
                };
                return Ok(Statement::Revert { database, snapshot });
            }
            let (media, paths) = p.media()?;
            let (options, moves) = p.restore_with()?;
            Statement::Restore {
                database,
                media,
                paths,
                options,
                moves,
            }
        }
    } else if first.is_kw("CREATE") && p.at_kw("DATABASE") {
        p.pos += 1;
        let name = p.name()?;
        let mut files = Vec::new();
        if p.at_kw("ON") {
            p.pos += 1;
            loop {
                p.punct('(')?;
                p.keyword("NAME")?;
                p.punct('=')?;
                let logical = match p.peek().cloned() {
                    Some(Token::Str(s)) => {
                        p.pos += 1;
                        s
                    }
                    _ => p.name()?,
                };
                p.punct(',')?;
                p.keyword("FILENAME")?;
                p.punct('=')?;
                let file = p.string()?;
                p.punct(')')?;
                files.push((logical, file));
                if p.peek() == Some(&Token::Punct(',')) {
                    p.pos += 1;
                } else {
                    break;
                }
            }
        }
        p.keyword("AS")?;
        if p.at_kw("SNAPSHOT") && !files.is_empty() {
            p.pos += 1;
            p.keyword("OF")?;
            let source = p.name()?;
            Statement::CreateSnapshot {
                name,
                files,
                source,
            }
        } else if files.is_empty() {
            p.keyword("COPY")?;
            p.keyword("OF")?;
            // `server.db` names a database on another server; the simulator has one.
            let mut source = p.name()?;
            while p.peek() == Some(&Token::Punct('.')) {
                p.pos += 1;
                source = p.name()?;
            }
            Statement::CreateCopy { name, source }
        } else {
            return Err(p.near());
        }
    } else if (first.is_kw("CREATE") || first.is_kw("ALTER")) && p.at_kw("CREDENTIAL") {
        p.pos += 1;
        let name = p.name()?;
        p.keyword("WITH")?;
        p.keyword("IDENTITY")?;
        p.punct('=')?;
        let identity = p.string()?;
        let mut secret = String::new();
        if p.peek() == Some(&Token::Punct(',')) {
            p.pos += 1;
            p.keyword("SECRET")?;
            p.punct('=')?;
            secret = p.string()?;
        }
        Statement::Credential {
            alter: first.is_kw("ALTER"),
            name,
            identity,
            secret,
        }
    } else if first.is_kw("ALTER") {
        p.keyword("DATABASE")?;
        let from = p.name()?;
        p.keyword("MODIFY")?;
        p.keyword("NAME")?;
        p.punct('=')?;
        let to = p.name()?;
        Statement::Rename { from, to }
    } else if first.is_kw("DROP") {
        p.keyword("DATABASE")?;
        Statement::Drop(p.name()?)
    } else if first.is_kw("EXEC") || first.is_kw("EXECUTE") {
        let procedure = p.dotted()?.join(".");
        let mut args = Vec::new();
        while p.peek().is_some() && p.peek() != Some(&Token::Punct(';')) {
            let name = match p.peek().cloned() {
                Some(Token::Word(w)) if w.starts_with('@') && !w.starts_with("@@") => {
                    p.pos += 1;
                    p.punct('=')?;
                    Some(w[1..].to_ascii_lowercase())
                }
                _ => None,
            };
            args.push((name, p.expr()?));
            if p.peek() == Some(&Token::Punct(',')) {
                p.pos += 1;
            } else {
                break;
            }
        }
        Statement::Exec { procedure, args }
    } else if first.is_kw("SELECT") {
        Statement::Select(p.select()?)
    } else if first.is_kw("DELETE") {
        if p.at_kw("FROM") {
            p.pos += 1;
        }
        let table = p.dotted()?;
        Statement::Delete {
            table,
            filter: p.filter()?,
        }
    } else if first.is_kw("UPDATE") {
        let table = p.dotted()?;
        p.keyword("SET")?;
        let mut sets = Vec::new();
        loop {
            let column = p.part()?;
            p.punct('=')?;
            sets.push((column, p.expr()?));
            if p.peek() == Some(&Token::Punct(',')) {
                p.pos += 1;
            } else {
                break;
            }
        }
        Statement::Update {
            table,
            sets,
            filter: p.filter()?,
        }
    } else if first.is_kw("IF") {
        p.keyword("EXISTS")?;
        p.punct('(')?;
        p.keyword("SELECT")?;
        let query = p.select()?;
        p.punct(')')?;
        let then = Box::new(statement(p, sql)?);
        Statement::IfExists { query, then }
    } else if first.is_kw("SET") {
        p.keyword("NOCOUNT")?;
        let on = p.at_kw("ON");
        if !on && !p.at_kw("OFF") {
            return Err(p.near());
        }
        p.pos += 1;
        Statement::SetNocount(on)
    } else if first.is_kw("USE") {
        Statement::Use(p.name()?)
    } else {
        return Err(first.shown());
    };
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
                media: Media::Disk,
                paths: vec!["C:\\b\\it's.bak".into()],
                options: Options(vec![("COPY_ONLY".into(), None), ("CHECKSUM".into(), None), ("COMPRESSION".into(), None), ("INIT".into(), None), ("STATS".into(), Some("10".into()))]),
            }
        );
        assert_eq!(
            parse_statement("restore verifyonly from disk = 'x.bak'").unwrap(),
            Statement::VerifyOnly {
                media: Media::Disk,
                paths: vec!["x.bak".into()]
            }
        );
        assert_eq!(
            parse_statement(
                "RESTORE DATABASE OctopusDeploy FROM DISK = N'x.bak' WITH REPLACE, RECOVERY"
            )
            .unwrap(),
            Statement::Restore {
                database: "OctopusDeploy".into(),
                media: Media::Disk,
                paths: vec!["x.bak".into()],
                options: Options(vec![("REPLACE".into(), None), ("RECOVERY".into(), None)]),
                moves: vec![],
            }
        );
        assert_eq!(
            parse_statement("SELECT @@VERSION").unwrap(),
            Statement::Select(Select {
                items: vec![(Expr::Global("@@VERSION".into()), String::new())],
                from: vec![],
                filter: vec![],
                group_by: vec![],
            })
        );
    }

    #[test]
    fn rejects_everything_else_naming_the_token() {
        assert_eq!(parse_statement("DROP TABLE [x]").unwrap_err(), "TABLE");
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
        assert_eq!(parse_batch("SELECT FROM x").unwrap_err(), "FROM");
        assert_eq!(parse_batch("SET NOCOUNT MAYBE").unwrap_err(), "MAYBE");
        assert_eq!(parse_batch("SELECT a FROM t WHERE a ! b").unwrap_err(), "!");
    }

    #[test]
    fn parses_the_doctor_queries() {
        let b = parse_batch("SET NOCOUNT ON; USE [Octo]; SELECT N'octoup', t.name, c.name AS col FROM sys.columns AS c JOIN sys.tables t ON t.object_id = c.object_id WHERE c.collation_name <> CONVERT(sysname, DATABASEPROPERTYEX(DB_NAME(), 'Collation')) ORDER BY t.name, c.name;").unwrap();
        assert_eq!(b[0], Statement::SetNocount(true));
        assert_eq!(b[1], Statement::Use("Octo".into()));
        let Statement::Select(s) = &b[2] else {
            panic!("{b:?}")
        };
        assert_eq!(
            s.items[1],
            (Expr::Column(Some("t".into()), "name".into()), "name".into())
        );
        assert_eq!(s.items[2].1, "col");
        assert_eq!(s.from[0].name, "sys.columns");
        assert_eq!(s.from[1].alias, "t");
        assert_eq!(s.from[1].on[0].op, "=");
        assert_eq!(s.filter[0].op, "<>");
        assert!(matches!(&s.filter[0].right, Expr::Call(n, a) if n == "CONVERT" && a.len() == 2));
        let b = parse_batch("SELECT v.available_bytes FROM sys.master_files AS f CROSS APPLY sys.dm_os_volume_stats(f.database_id, f.file_id) AS v WHERE f.database_id = DB_ID(N'x') AND v.x IS NOT NULL").unwrap();
        let Statement::Select(s) = &b[0] else {
            panic!()
        };
        assert_eq!(s.from[1].args.as_ref().unwrap().len(), 2);
        assert_eq!(s.filter[1].op, "IS NOT NULL");
        assert!(parse_batch("SELECT CAST(SERVERPROPERTY('Edition') AS nvarchar(128))").is_ok());
    }
}
