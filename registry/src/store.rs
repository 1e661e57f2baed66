//! Registry persistence: the current state plus the history of applied versions.
//!
//! [`FileRegistryStore`] keeps the current state in one JSON file and each applied version in
//! `<file>.history/v<N>.json`. Every write goes to a temporary file that is fsynced and then
//! renamed over the target, so a crash leaves either the old or the new file, never a torn one.
//! Writers serialize on an advisory lock (`<file>.lock`).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::RegistryDoc;
use crate::plan::Plan;

/// One completed materialization of a view: `[start, end]` was loaded into the online store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterializationInterval {
    /// Start of the event-time window (inclusive).
    pub start: DateTime<Utc>,
    /// End of the event-time window (inclusive).
    pub end: DateTime<Utc>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
}

/// The registry as it stands: the definitions of the latest version plus operational state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryState {
    /// Version number of the definitions (1 for the first apply).
    pub version: u64,
    /// When the definitions were applied.
    pub applied_at: DateTime<Utc>,
    /// The definitions.
    pub doc: RegistryDoc,
    /// Materialized intervals per feature view, coalesced (overlapping runs are merged).
    #[serde(default)]
    pub materializations: BTreeMap<String, Vec<MaterializationInterval>>,
}

impl RegistryState {
    /// End of the most recent materialization of `view`, if any (where
    /// `materialize-incremental` continues).
    pub fn most_recent_end(&self, view: &str) -> Option<DateTime<Utc>> {
        self.materializations.get(view)?.iter().map(|i| i.end).max()
    }
}

/// One entry of the history: who applied which version when, and what it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// Who applied it (the OS user, or what the caller says).
    pub applied_by: String,
    /// The plan lines of the apply.
    pub changes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HistoryEntry {
    #[serde(flatten)]
    pub(crate) info: VersionInfo,
    pub(crate) doc: RegistryDoc,
}

/// Where registry state lives. Implementations must make each write atomic.
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// The current state, or `None` before the first apply.
    fn load(&self) -> Result<Option<RegistryState>>;
    /// Records `doc` as a new version, with the plan computed under the store's write lock
    /// against the version it replaces (so concurrent applies each record the change they
    /// really made). `allow` sees that plan before anything is written and may refuse it
    /// ([`Error::Refused`]). An empty plan records no version.
    fn apply(
        &self,
        doc: RegistryDoc,
        applied_by: &str,
        allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
    ) -> Result<Applied>;
    /// Records a finished materialization of `view`.
    fn record_materialization(&self, view: &str, interval: MaterializationInterval) -> Result<()>;
    /// The versions applied so far, oldest first.
    fn history(&self) -> Result<Vec<VersionInfo>>;
    /// The definitions of one version.
    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)>;
    /// A cheap token that changes whenever the state changes (for cache refresh).
    fn change_token(&self) -> Result<Option<u128>>;
    /// Removes the registry (teardown).
    fn delete(&self) -> Result<()>;
}

/// The file-based registry store.
#[derive(Debug, Clone)]
pub struct FileRegistryStore {
    path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("registry"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl FileRegistryStore {
    /// A store at `path` (created on first apply).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRegistryStore { path: path.into() }
    }

    /// Path of the current-state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn history_dir(&self) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".history");
        self.path.with_file_name(name)
    }

    fn lock(&self) -> Result<File> {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        let lock_path = self.path.with_file_name(name);
        if let Some(dir) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        f.lock().map_err(io(&lock_path))?;
        Ok(f)
    }

    fn write_state(&self, state: &RegistryState) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&self.path, &bytes)
    }
}

/// What an apply did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The changes, against the version that was current under the lock.
    pub plan: Plan,
    /// The state after the apply: the new version, or the current one when nothing changed
    /// (`None` before any apply).
    pub state: Option<RegistryState>,
    /// Whether a new version was recorded.
    pub recorded: bool,
}

/// Plans `doc` (already normalized) against `old` and, when something changes and `allow`
/// agrees, makes the next version. Every store's `apply` uses it under its lock.
pub(crate) fn plan_next(
    old: Option<RegistryState>,
    doc: RegistryDoc,
    applied_by: &str,
    allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
) -> Result<(Plan, Next)> {
    let mut plan = crate::plan::diff(old.as_ref().map(|s| &s.doc), &doc);
    plan.base_version = old.as_ref().map(|s| s.version);
    if plan.is_empty() {
        return Ok((plan, Next::Unchanged(old)));
    }
    allow(&plan)?;
    let (state, entry) = next_version(old, doc, plan.lines(), applied_by);
    Ok((plan, Next::Version(Box::new(state), Box::new(entry))))
}

/// What [`plan_next`] decided.
pub(crate) enum Next {
    /// A new version to record.
    Version(Box<RegistryState>, Box<HistoryEntry>),
    /// Nothing changed: the current state stays.
    Unchanged(Option<RegistryState>),
}

impl Next {
    /// The version to record, or (as `Err`) the finished [`Applied`] of an apply that changed
    /// nothing, for every store to return as it is.
    pub(crate) fn into_record(self, plan: &Plan) -> std::result::Result<(RegistryState, HistoryEntry), Box<Applied>> {
        match self {
            Next::Version(state, entry) => Ok((*state, *entry)),
            Next::Unchanged(current) => Err(Box::new(Applied {
                plan: plan.clone(),
                state: current,
                recorded: false,
            })),
        }
    }
}

/// The state and history entry of the version that applying `doc` (already normalized) on top
/// of `old` makes: the next version number, the materialization records of views that remain.
/// Every store's `apply` uses it, so they agree on what a version is.
pub(crate) fn next_version(
    old: Option<RegistryState>,
    doc: RegistryDoc,
    changes: Vec<String>,
    applied_by: &str,
) -> (RegistryState, HistoryEntry) {
    let version = old.as_ref().map(|s| s.version).unwrap_or(0) + 1;
    let mut materializations = old.map(|s| s.materializations).unwrap_or_default();
    materializations.retain(|view, _| doc.feature_view(view).is_some());
    let state = RegistryState {
        version,
        applied_at: Utc::now(),
        doc,
        materializations,
    };
    let entry = HistoryEntry {
        info: VersionInfo {
            version,
            applied_at: state.applied_at,
            applied_by: applied_by.to_string(),
            changes,
        },
        doc: state.doc.clone(),
    };
    (state, entry)
}

/// Adds `new` to `list`, merging overlapping intervals (the list stays sorted and small).
pub(crate) fn merge_interval(list: &mut Vec<MaterializationInterval>, new: MaterializationInterval) {
    list.push(new);
    list.sort_by_key(|i| i.start);
    let mut merged: Vec<MaterializationInterval> = Vec::with_capacity(list.len());
    for i in list.drain(..) {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => {
                if i.end > last.end {
                    last.end = i.end;
                }
                if i.finished_at > last.finished_at {
                    last.finished_at = i.finished_at;
                }
            }
            _ => merged.push(i),
        }
    }
    *list = merged;
}

impl RegistryStore for FileRegistryStore {
    fn load(&self) -> Result<Option<RegistryState>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Corrupt {
                path: self.path.clone(),
                message: if bytes.first().is_some_and(|b| !b.is_ascii_whitespace() && *b != b'{') {
                    // Feast writes its file registry as a protobuf message.
                    format!(
                        "{e}: it is not a Larder registry (JSON) — a Feast registry (protobuf) written \
                         after Larder opened the repo? Restart Larder to serve it as Feast's, or run \
                         `larder import-feast` to move it into a registry of Larder's own"
                    )
                } else {
                    e.to_string()
                },
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    fn apply(
        &self,
        mut doc: RegistryDoc,
        applied_by: &str,
        allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
    ) -> Result<Applied> {
        let _lock = self.lock()?;
        doc.normalize();
        let (plan, next) = plan_next(self.load()?, doc, applied_by, allow)?;
        let (state, entry) = match next.into_record(&plan) {
            Ok(record) => record,
            Err(unchanged) => return Ok(*unchanged),
        };
        let version = state.version;
        let hist = self.history_dir().join(format!("v{version:08}.json"));
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| Error::Corrupt {
            path: hist.clone(),
            message: e.to_string(),
        })?;
        // History first: if we crash before the state file is replaced, the next apply
        // rewrites this version's history entry, and readers never see a version without one.
        write_atomic(&hist, &bytes)?;
        self.write_state(&state)?;
        Ok(Applied {
            plan,
            state: Some(state),
            recorded: true,
        })
    }

    fn record_materialization(&self, view: &str, interval: MaterializationInterval) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut state) = self.load()? else {
            return Ok(());
        };
        merge_interval(state.materializations.entry(view.to_string()).or_default(), interval);
        self.write_state(&state)
    }

    fn history(&self) -> Result<Vec<VersionInfo>> {
        let current = self.load()?.map(|s| s.version).unwrap_or(0);
        let dir = self.history_dir();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::Io { path: dir, source: e }),
        };
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(io(&path))?;
            let h: HistoryEntry = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if h.info.version <= current {
                out.push(h.info);
            }
        }
        out.sort_by_key(|i| i.version);
        Ok(out)
    }

    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)> {
        let path = self.history_dir().join(format!("v{version:08}.json"));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchVersion(version)),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let h: HistoryEntry = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path,
            message: e.to_string(),
        })?;
        Ok((h.info, h.doc))
    }

    fn change_token(&self) -> Result<Option<u128>> {
        match fs::metadata(&self.path) {
            Ok(m) => {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                Ok(Some(t ^ ((m.len() as u128) << 96)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    fn delete(&self) -> Result<()> {
        let _lock = self.lock()?;
        for p in [self.path.clone(), self.history_dir()] {
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path: p, source: e }),
            }
        }
        Ok(())
    }
}

/// The file of a `sqlite:///relative/or/absolute` URL (SQLAlchemy's form, as Feast writes it:
/// three slashes and a relative path, four for an absolute one), resolved against `base`.
pub fn sqlite_path(url: &str, base: &Path) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:///")?;
    let p = Path::new(rest);
    Some(if p.is_absolute() { p.to_path_buf() } else { base.join(p) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff;

    fn doc(project: &str) -> RegistryDoc {
        RegistryDoc {
            project: project.into(),
            entities: vec![crate::Entity {
                name: "e0".into(),
                join_keys: vec!["k".into()],
                value_type: Some(crate::ValueType::Int64),
                description: String::new(),
                tags: Default::default(),
                owner: String::new(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn versions_and_history_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/registry.json");
        let store = FileRegistryStore::new(&path);
        assert!(store.load().unwrap().is_none());
        let d1 = doc("p");
        let s1 = store.apply(d1.clone(), "alice", &|_| Ok(())).unwrap().state.unwrap();
        assert_eq!(s1.version, 1);
        let mut d2 = doc("p");
        d2.entities.push(crate::Entity {
            name: "driver".into(),
            join_keys: vec!["driver_id".into()],
            value_type: Some(crate::ValueType::Int64),
            description: String::new(),
            tags: Default::default(),
            owner: String::new(),
        });
        let applied = store.apply(d2.clone(), "bob", &|_| Ok(())).unwrap();
        assert!(applied.recorded);
        assert_eq!(applied.plan.changes, diff(Some(&d1), &d2).changes);
        // The plan says which version it was made against.
        assert_eq!(applied.plan.base_version, Some(1));
        let again = store.apply(d2.clone(), "bob", &|_| Ok(())).unwrap();
        assert!(!again.recorded && again.plan.is_empty());
        let reopened = FileRegistryStore::new(&path);
        let state = reopened.load().unwrap().unwrap();
        assert_eq!(state.version, 2);
        let mut normalized = d2.clone();
        normalized.normalize();
        assert_eq!(state.doc, normalized);
        let hist = reopened.history().unwrap();
        assert_eq!(hist.iter().map(|h| h.version).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(hist[1].applied_by, "bob");
        assert_eq!(hist[1].changes, vec!["Created entity driver".to_string()]);
        assert_eq!(reopened.version(1).unwrap().1, d1);
        assert!(matches!(reopened.version(9), Err(Error::NoSuchVersion(9))));
    }

    #[test]
    fn a_torn_temp_file_does_not_affect_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        let store = FileRegistryStore::new(&path);
        let d = doc("p");
        store.apply(d.clone(), "x", &|_| Ok(())).unwrap();
        // A crash mid-write leaves only a partial temp file behind.
        fs::write(dir.path().join(".registry.json.tmp.999"), b"{\"version\": 2, \"doc").unwrap();
        assert_eq!(store.load().unwrap().unwrap().version, 1);
    }

    #[test]
    fn materialization_intervals_coalesce() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRegistryStore::new(dir.path().join("r.json"));
        let d = doc("p");
        store.apply(d.clone(), "x", &|_| Ok(())).unwrap();
        let t = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap();
        for (s, e) in [(0, 5), (3, 8), (10, 12)] {
            store
                .record_materialization(
                    "v",
                    MaterializationInterval {
                        start: t(s),
                        end: t(e),
                        finished_at: t(20),
                    },
                )
                .unwrap();
        }
        let state = store.load().unwrap().unwrap();
        let iv: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            state.materializations["v"].iter().map(|i| (i.start, i.end)).collect();
        assert_eq!(iv, vec![(t(0), t(8)), (t(10), t(12))]);
        assert_eq!(state.most_recent_end("v"), Some(t(12)));
    }

    #[test]
    fn urls_resolve_like_sqlalchemy() {
        let base = Path::new("/repo");
        assert_eq!(
            sqlite_path("sqlite:///data/r.db", base).unwrap(),
            PathBuf::from("/repo/data/r.db")
        );
        assert_eq!(
            sqlite_path("sqlite:////abs/r.db", base).unwrap(),
            PathBuf::from("/abs/r.db")
        );
        assert!(sqlite_path("postgresql://h/db", base).is_none());
    }
}
