//! Background jobs of the server: a materialization started over HTTP runs here, outside the
//! request (and its timeout), and is watched with `GET /jobs/{id}`.
//!
//! Jobs run on their own runtime ([`background`]): one worker thread and its blocking pool,
//! at a lowered OS priority, so that a materialization (its scan, its conversion to rows, its
//! writes) takes at most one core and yields it to the serving threads when both want it.
//!
//! Jobs live in the serving process's memory: the most recent [`KEEP`] finished ones are kept
//! for their callers to read; a restart forgets them (a materialization cut short by a restart
//! records nothing, so re-running it is safe).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::materialize::Progress;
use crate::store::MaterializeOutcome;

/// The OS priority of the background runtime's threads, on thread-priority's 0-99 scale
/// (23: nice 9 on Linux, about a tenth of a core's share against a serving thread).
const BACKGROUND_PRIORITY: u8 = 23;

/// The runtime background jobs run on (built on first use): one worker thread, so that a job
/// never holds more than one core with its CPU work, and threads (workers and blocking pool)
/// at a lowered OS priority. A job's own spawned tasks (DataFusion's partitions) and
/// blocking calls (the online store's writes) stay on it. `None` when it cannot be built.
fn background() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(4)
                .thread_name("larder-job")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .inspect_err(|e| tracing::warn!(error = %e, "No background runtime: jobs share the serving threads."))
                .ok()
        })
        .as_ref()
        .map(tokio::runtime::Runtime::handle)
}

/// Lowers the calling thread's OS priority to [`BACKGROUND_PRIORITY`] (a thread may always
/// lower its own).
fn lower_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    let lowered = ThreadPriorityValue::try_from(BACKGROUND_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|p| set_current_thread_priority(ThreadPriority::Crossplatform(p)).map_err(|e| e.to_string()));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "a job thread keeps the normal priority");
    }
}

/// Runs `work` on the background runtime (see [`background`]), or on the current one when
/// there is none.
pub fn spawn_background<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match background() {
        Some(rt) => rt.spawn(work),
        None => tokio::spawn(work),
    }
}

/// How many jobs are remembered (running ones are never dropped).
pub const KEEP: usize = 256;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error (see `error`).
    Failed,
}

/// A finished view of a materialization job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ViewResult {
    /// The view.
    pub feature_view: String,
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Rows written online.
    pub rows: u64,
    /// Of those, keys already older than the view's ttl.
    pub expired: u64,
    /// Wall time of the view, seconds.
    pub seconds: f64,
}

/// Why a job failed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// The HTTP status the error would have had as a response.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

/// What `GET /jobs/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobReport {
    /// The job id.
    pub id: String,
    /// `materialize` or `materialize-incremental`.
    pub kind: String,
    /// Where it is.
    pub status: JobStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The view being materialized now.
    pub current_view: Option<String>,
    /// Rows written so far, over all views.
    pub rows_written: u64,
    /// The views done so far.
    pub views: Vec<ViewResult>,
    /// Why it failed.
    pub error: Option<JobError>,
}

/// One job: its report, updated as it runs.
#[derive(Debug)]
pub struct Job {
    report: Mutex<JobReport>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }

    /// A copy of the report.
    pub fn report(&self) -> Option<JobReport> {
        self.report.lock().ok().map(|r| r.clone())
    }

    /// Records the job's end.
    pub fn finish(&self, result: &crate::Result<Vec<MaterializeOutcome>>) {
        self.update(|r| {
            r.finished_at = Some(Utc::now());
            r.current_view = None;
            match result {
                Ok(done) => {
                    r.status = JobStatus::Succeeded;
                    r.views = done
                        .iter()
                        .map(|o| ViewResult {
                            feature_view: o.view.clone(),
                            start: o.start,
                            end: o.end,
                            rows: o.rows,
                            expired: o.expired,
                            seconds: o.seconds,
                        })
                        .collect();
                }
                Err(e) => {
                    r.status = JobStatus::Failed;
                    r.error = Some(JobError {
                        status: e.status(),
                        message: e.to_string(),
                    });
                }
            }
        });
    }
}

impl Progress for Job {
    fn start_view(&self, view: &str) {
        self.update(|r| r.current_view = Some(view.to_string()));
    }
    fn rows_written(&self, rows: u64) {
        self.update(|r| r.rows_written += rows);
    }
}

/// The server's jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<VecDeque<(String, Arc<Job>)>>,
}

impl Jobs {
    /// Registers a new running job of `kind`.
    pub fn start(&self, kind: &str) -> Arc<Job> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{kind}-{n}-{:x}", Utc::now().timestamp_micros());
        let job = Arc::new(Job {
            report: Mutex::new(JobReport {
                id: id.clone(),
                kind: kind.to_string(),
                status: JobStatus::Running,
                started_at: Utc::now(),
                finished_at: None,
                current_view: None,
                rows_written: 0,
                views: Vec::new(),
                error: None,
            }),
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push_back((id, Arc::clone(&job)));
            while jobs.len() > KEEP {
                let finished = jobs
                    .iter()
                    .position(|(_, j)| j.report().is_some_and(|r| r.status != JobStatus::Running));
                match finished {
                    Some(i) => {
                        jobs.remove(i);
                    }
                    None => break,
                }
            }
        }
        job
    }

    /// The job with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .ok()?
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, j)| Arc::clone(j))
    }
}
