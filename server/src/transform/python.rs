//! Feast's `pandas` and `python` on-demand transformations, run by a Python worker.
//!
//! The server starts `python -m larder.transform_worker --socket PATH` (interpreter:
//! `$LARDER_PYTHON`, else `python3`; the Larder SDK must be importable) on first use and talks
//! to it over a Unix socket. A request is a frame `u32le header length, JSON header (the
//! view's name, mode, function name and source), u64le body length, Arrow IPC stream of the
//! inputs`; the answer is a frame of the same shape with `{"ok": true}` and the outputs, or
//! `{"error": "..."}`, both echoing the request's `id`. The worker compiles each function once
//! from the registry's source text, as Feast's server unpickles it. A worker that dies is
//! restarted on the next request.
//!
//! One connection carries one exchange at a time, so an exchange must never stop halfway: each
//! runs in its own task, which finishes even when the HTTP request that asked for it is
//! cancelled (client gone, timeout). An answer whose `id` is not the request's means the stream
//! is out of step; the worker is then restarted rather than trusted.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use larder_registry::OnDemandFeatureView;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::{conform, output_schema};
use crate::error::{Error, Result};

/// Largest frame accepted from the worker.
const MAX_FRAME: u64 = 1 << 32;

/// Longest one transformation may run (`LARDER_UDF_TIMEOUT_SECS`, default 30): past it the
/// worker is killed (and restarted on the next call), so a function that hangs cannot block
/// every later request.
fn udf_timeout() -> Duration {
    let secs = std::env::var("LARDER_UDF_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

struct Running {
    child: Child,
    conn: UnixStream,
    _dir: tempfile::TempDir,
}

/// The Python transformation worker (one process, one connection; calls are serialized, as
/// the Python interpreter runs one transformation at a time anyway).
pub struct PythonWorker {
    work_dir: PathBuf,
    running: Arc<Mutex<Option<Running>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for PythonWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonWorker")
            .field("work_dir", &self.work_dir)
            .finish()
    }
}

fn python() -> String {
    std::env::var("LARDER_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the Python transformation worker: {e}"))
}

impl PythonWorker {
    /// A worker that will run in `work_dir`.
    pub fn new(work_dir: PathBuf) -> Self {
        PythonWorker {
            work_dir,
            running: Arc::new(Mutex::new(None)),
            next_id: AtomicU64::new(1),
        }
    }

    async fn start(work_dir: PathBuf) -> Result<Running> {
        let dir = tempfile::Builder::new()
            .prefix("larder-transform-")
            .tempdir()
            .map_err(unavailable)?;
        let socket = dir.path().join("worker.sock");
        let mut child = Command::new(python())
            .args(["-m", "larder.transform_worker", "--socket"])
            .arg(&socket)
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(format!("cannot start {} -m larder.transform_worker: {e}", python())))?;
        for _ in 0..600 {
            if let Ok(conn) = UnixStream::connect(&socket).await {
                return Ok(Running { child, conn, _dir: dir });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(unavailable(format!(
                    "it exited ({status}) before listening; is the Larder SDK installed for {}?",
                    python()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(unavailable("it did not start listening within 30 s"))
    }

    /// Runs `odfv`'s function on `inputs`.
    pub async fn run(&self, odfv: &OnDemandFeatureView, inputs: RecordBatch) -> Result<RecordBatch> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let header = json!({
            "id": id,
            "name": odfv.name,
            "mode": odfv.mode,
            "udf_name": odfv.udf_name,
            "udf_body": odfv.udf_body,
            "features": odfv.features.iter().map(|f| &f.name).collect::<Vec<_>>(),
        })
        .to_string();
        let mut body = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut body, &inputs.schema())?;
            w.write(&inputs)?;
            w.finish()?;
        }
        // The exchange runs in its own task: dropping this future (a cancelled request) must not
        // leave an answer unread on the connection for the next caller.
        let (running, work_dir) = (Arc::clone(&self.running), self.work_dir.clone());
        let name = odfv.name.clone();
        let task = tokio::spawn(async move {
            let mut guard = running.lock().await;
            if guard.is_none() {
                *guard = Some(Self::start(work_dir).await?);
            }
            let Some(running) = guard.as_mut() else {
                return Err(unavailable("it is not running"));
            };
            let limit = udf_timeout();
            let answer = match tokio::time::timeout(limit, exchange(&mut running.conn, header.as_bytes(), &body)).await
            {
                Err(_) => Err(format!(
                    "on-demand view {name}: the transformation did not finish within {} s \
                     (LARDER_UDF_TIMEOUT_SECS); the worker was restarted",
                    limit.as_secs_f64()
                )),
                Ok(r) => r
                    .map_err(|e| e.to_string())
                    .and_then(|(reply, out)| parse_reply(&reply, id).map(|reply| (reply, out))),
            };
            match answer {
                Ok(answer) => Ok(answer),
                Err(e) => {
                    // The worker is gone or out of step: restart it on the next call.
                    if let Some(mut r) = guard.take() {
                        let _ = r.child.kill().await;
                    }
                    Err(unavailable(e))
                }
            }
        });
        let (reply, out) = task
            .await
            .map_err(|e| Error::Internal(format!("the Python transformation task: {e}")))??;
        decode(odfv, &reply, &out, inputs.num_rows())
    }
}

/// The answer's header, checked to answer request `id`.
fn parse_reply(reply: &[u8], id: u64) -> std::result::Result<serde_json::Value, String> {
    let reply: serde_json::Value = serde_json::from_slice(reply).map_err(|e| format!("bad answer header: {e}"))?;
    match reply.get("id").and_then(|v| v.as_u64()) {
        Some(got) if got == id => Ok(reply),
        got => Err(format!(
            "answer for request {got:?} received for request {id}: out of step"
        )),
    }
}

async fn exchange(conn: &mut UnixStream, header: &[u8], body: &[u8]) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    conn.write_all(&(header.len() as u32).to_le_bytes()).await?;
    conn.write_all(header).await?;
    conn.write_all(&(body.len() as u64).to_le_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await?;
    let hlen = conn.read_u32_le().await? as usize;
    let mut reply = vec![0; hlen];
    conn.read_exact(&mut reply).await?;
    let blen = conn.read_u64_le().await?;
    if blen > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {blen} bytes")));
    }
    let mut out = vec![0; blen as usize];
    conn.read_exact(&mut out).await?;
    Ok((reply, out))
}

fn decode(odfv: &OnDemandFeatureView, reply: &serde_json::Value, out: &[u8], n: usize) -> Result<RecordBatch> {
    if let Some(err) = reply.get("error").and_then(|e| e.as_str()) {
        return Err(Error::Internal(format!(
            "on-demand view {}: the transformation failed: {err}",
            odfv.name
        )));
    }
    let reader = StreamReader::try_new(Cursor::new(out), None)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| Error::Internal(format!("on-demand view {}: no output", odfv.name)))?;
    let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
    if batch.num_rows() != n {
        return Err(Error::Internal(format!(
            "on-demand view {}: the transformation returned {} rows for {n}",
            odfv.name,
            batch.num_rows()
        )));
    }
    let target = output_schema(odfv);
    let mut columns = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        let col = batch.column_by_name(f.name()).ok_or_else(|| {
            Error::Internal(format!(
                "on-demand view {}: the transformation did not return {}",
                odfv.name,
                f.name()
            ))
        })?;
        columns.push(conform(odfv, f.name(), std::sync::Arc::clone(col))?);
    }
    RecordBatch::try_new(target, columns).map_err(|e| Error::Internal(e.to_string()))
}
