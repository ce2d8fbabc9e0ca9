//! The state directory: `state.json` under the lock `state.lock`, saved atomically (temp
//! file + rename), and the history `history.jsonl` appended under the same lock.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::model::State;
use crate::history::{Event, Record};

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "state.lock";
pub const HISTORY_FILE: &str = "history.jsonl";
/// The rehearsal SQL Server's own state directory, inside the installation's.
pub const REHEARSAL_SQL_DIR: &str = "rehearsal-sql";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}; check that the simulator directory exists and is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({message}); recreate the installation with `octoup-sim up`")]
    Corrupt { path: String, message: String },
    #[error("no simulated installation in {0}; create one with `octoup-sim up --dir {0}`")]
    NotFound(String),
    #[error(
        "{0} already holds a simulated installation; stop it with `octoup-sim down --dir {0}` and remove the directory, or choose another one"
    )]
    AlreadyExists(String),
}

/// Access to one installation's state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens an existing installation.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if !dir.join(STATE_FILE).is_file() {
            return Err(StoreError::NotFound(dir.display().to_string()));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// Creates the directory and writes a new state (and its first history events).
    pub fn create(dir: &Path, mut state: State) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let store = Store {
            dir: dir.to_path_buf(),
        };
        let _lock = store.lock_file(true, true)?;
        if store.state_path().exists() {
            return Err(StoreError::AlreadyExists(dir.display().to_string()));
        }
        store.commit(&mut state)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn history_path(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }

    /// Reads the state under a shared lock.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        let _lock = self.lock(false)?;
        let state = self.load()?;
        Ok(f(&state))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Result<State, StoreError> {
        self.read(State::clone)
    }

    /// Locks, loads, lets `f` change the state, then saves it and appends the events `f`
    /// recorded. When `f` fails nothing is saved and its events are dropped.
    pub fn update<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock(true)?;
        let mut state = self.load()?;
        let value = f(&mut state)?;
        self.commit(&mut state)?;
        Ok(value)
    }

    /// Appends one event to the history.
    pub(crate) fn record(&self, event: Event) -> Result<(), StoreError> {
        self.update(|s| {
            s.record(event);
            Ok::<_, StoreError>(())
        })
    }

    /// Every history record so far.
    pub fn history(&self) -> Result<Vec<Record>, StoreError> {
        let _lock = self.lock(false)?;
        load_history(&self.history_path())
    }

    /// Takes the state lock. Only [`Store::create`] creates the lock file: an installation
    /// whose directory is being deleted must not have it recreated under the deleter.
    fn lock(&self, exclusive: bool) -> Result<File, StoreError> {
        self.lock_file(exclusive, false)
    }

    fn lock_file(&self, exclusive: bool, create: bool) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .create(create)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    StoreError::NotFound(self.dir.display().to_string())
                } else {
                    io(source)
                }
            })?;
        if exclusive {
            file.lock().map_err(io)?;
        } else {
            file.lock_shared().map_err(io)?;
        }
        // Dropping the file releases the lock.
        Ok(file)
    }

    fn load(&self) -> Result<State, StoreError> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound(self.dir.display().to_string())
            } else {
                StoreError::Io {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The rehearsal SQL Server's store (`DIR/rehearsal-sql`), when the installation has one.
    pub fn rehearsal_server(&self) -> Result<Store, StoreError> {
        Store::open(&self.dir.join(REHEARSAL_SQL_DIR))
    }

    /// Appends events that happened on another SQL Server (`label`) to this history, under
    /// this store's lock and with its sequence numbers.
    fn append_from(&self, label: &str, events: Vec<Event>) -> Result<(), StoreError> {
        let _lock = self.lock(true)?;
        let mut state = self.load()?;
        let records = stamp(&mut state, events, Some(label));
        self.save(&state)?;
        append_history(&self.history_path(), &records)
    }

    /// Saves the state (temp file + rename) and appends its pending events.
    fn commit(&self, state: &mut State) -> Result<(), StoreError> {
        let events = std::mem::take(&mut state.pending);
        if let Some(label) = state.server_label.clone() {
            // Another SQL Server of the installation: its events are the installation's.
            self.save(state)?;
            let Some(parent) = self.dir.parent() else {
                return Ok(());
            };
            return Store {
                dir: parent.to_path_buf(),
            }
            .append_from(&label, events);
        }
        let records = stamp(state, events, None);
        self.save(state)?;
        append_history(&self.history_path(), &records)
    }

    /// Writes the state (temp file + rename).
    fn save(&self, state: &State) -> Result<(), StoreError> {
        let path = self.state_path();
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let io = |p: &Path, source| StoreError::Io {
            path: p.display().to_string(),
            source,
        };
        // Serializing our own types cannot fail.
        let text = serde_json::to_string_pretty(state).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }
}

/// History records for `events`, numbered from `state`'s next sequence number, now.
fn stamp(state: &mut State, events: Vec<Event>, server: Option<&str>) -> Vec<Record> {
    let at = Timestamp::now();
    let sim_seconds = state.clock().sim_at(at);
    events
        .into_iter()
        .map(|event| {
            let seq = state.next_seq;
            state.next_seq += 1;
            Record {
                seq,
                at,
                sim_seconds,
                server: server.map(str::to_string),
                event,
            }
        })
        .collect()
}

/// Appends records to the history file (the caller holds the state lock).
fn append_history(path: &Path, records: &[Record]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut text = String::new();
    for record in records {
        // Serializing our own types cannot fail (no maps with non-string keys).
        text.push_str(&serde_json::to_string(record).unwrap_or_default());
        text.push('\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.flush().map_err(io)
}

/// Reads every record of a history file (missing file: empty history).
fn load_history(path: &Path) -> Result<Vec<Record>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| StoreError::Corrupt {
            path: format!("{}:{}", path.display(), i + 1),
            message: e.to_string(),
        })?;
        records.push(record);
    }
    Ok(records)
}
