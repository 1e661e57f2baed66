//! Handing a materialization to the server that holds the embedded store.
//!
//! One process at a time may open the embedded (RocksDB) online store. `larder serve` writes
//! `<store directory>/larder-server.json` (its pid, project and loopback URL) once it listens,
//! and removes it when it stops. `larder materialize` and `materialize-incremental`, finding
//! the store held by another process, read that file and ask the server instead: `POST
//! /materialize` (or `/materialize-incremental`), then `GET /jobs/{id}` until the job ends,
//! reporting progress as a local run does. With `auth` on, the CLI sends `LARDER_TOKEN` or the
//! first token of the repo's auth configuration with the `admin` role in the project.
//!
//! The hand-off speaks plain HTTP: a server started with `--cert` is named in the error, with
//! the route to call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::jobs::{JobReport, JobStatus};
use crate::materialize::Progress;
use crate::MaterializeOutcome;

/// The file a server writes into the embedded store's directory.
pub const FILE: &str = "larder-server.json";

/// How a running server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddress {
    /// The server's process id.
    pub pid: u32,
    /// Its project.
    pub project: String,
    /// Its base URL (`http://127.0.0.1:6566`).
    pub url: String,
}

impl ServerAddress {
    /// The server, for messages: its URL, and its pid when it runs on this machine (a remote
    /// online store's server has pid 0).
    pub fn describe(&self) -> String {
        match self.pid {
            0 => format!("the feature server at {}", self.url),
            pid => format!("the server at {} (pid {pid}), which holds the online store,", self.url),
        }
    }
}

/// The advertisement of a running server; removed when dropped (at shutdown).
#[derive(Debug)]
pub struct Advertised {
    path: PathBuf,
}

impl Drop for Advertised {
    #[allow(clippy::disallowed_methods, reason = "once, when the server stops")]
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The URL a client on this machine reaches a listener bound to `addr` with (a wildcard
/// address is reached on loopback).
pub fn local_url(scheme: &str, addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// Writes `address` into the store directory `dir` (atomically: a reader sees the old file or
/// the new one).
#[allow(clippy::disallowed_methods, reason = "once, at start-up")]
pub fn advertise(dir: &Path, address: &ServerAddress) -> Result<Advertised> {
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.{}.tmp", address.pid));
    let text = serde_json::to_vec_pretty(address).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Unavailable(format!("cannot write {}: {e}", path.display())))?;
    Ok(Advertised { path })
}

/// The server advertised in the store directory `dir`, if any.
#[allow(clippy::disallowed_methods, reason = "the CLI, before it starts work")]
pub fn find(dir: &Path) -> Option<ServerAddress> {
    let text = std::fs::read(dir.join(FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// What to ask the server for.
#[derive(Debug, Clone)]
pub enum MaterializeCall {
    /// `POST /materialize`.
    Range {
        /// Window start.
        start: DateTime<Utc>,
        /// Window end.
        end: DateTime<Utc>,
    },
    /// `POST /materialize-incremental`.
    Incremental {
        /// Window end.
        end: DateTime<Utc>,
    },
}

/// Runs `call` for `views` (empty: every online view) on the server at `address` and waits
/// for the job, reporting to `progress`; the outcomes are those a local run returns.
pub async fn materialize(
    address: &ServerAddress,
    token: Option<&str>,
    call: &MaterializeCall,
    views: &[String],
    progress: &dyn Progress,
) -> Result<Vec<MaterializeOutcome>> {
    if !address.url.starts_with("http://") {
        return Err(Error::Unavailable(format!(
            "{} serves TLS: call POST /materialize on it (or stop it and run this again)",
            address.describe()
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let views = (!views.is_empty()).then_some(views);
    let (route, body) = match call {
        MaterializeCall::Range { start, end } => (
            "/materialize",
            json!({"start_ts": start.to_rfc3339(), "end_ts": end.to_rfc3339(), "feature_views": views}),
        ),
        MaterializeCall::Incremental { end } => (
            "/materialize-incremental",
            json!({"end_ts": end.to_rfc3339(), "feature_views": views}),
        ),
    };
    let unreachable = |e: reqwest::Error| Error::Unavailable(format!("{} does not answer: {e}", address.describe()));
    let with_token = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    // `async=true`: the server answers at once; the job is followed here, for the progress.
    let resp = with_token(client.post(format!("{}{route}?async=true", address.url)).json(&body))
        .send()
        .await
        .map_err(unreachable)?;
    let mut report = job_report(resp).await?;
    let mut current: Option<String> = None;
    let mut written = 0;
    loop {
        if report.current_view != current {
            if let Some(v) = &report.current_view {
                progress.start_view(v);
            }
            current.clone_from(&report.current_view);
        }
        if report.rows_written > written {
            progress.rows_written(report.rows_written - written);
            written = report.rows_written;
        }
        match report.status {
            JobStatus::Running => {}
            JobStatus::Succeeded => break,
            JobStatus::Failed => {
                let e = report.error.unwrap_or(crate::jobs::JobError {
                    status: 500,
                    message: "the job failed".into(),
                });
                return Err(remote_error(
                    e.status,
                    format!("on the server at {}: {}", address.url, e.message),
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let resp = with_token(client.get(format!("{}/jobs/{}", address.url, report.id)))
            .send()
            .await
            .map_err(unreachable)?;
        report = job_report(resp).await?;
    }
    Ok(report
        .views
        .into_iter()
        .map(|v| MaterializeOutcome {
            view: v.feature_view,
            start: v.start,
            end: v.end,
            rows: v.rows,
            expired: v.expired,
            seconds: v.seconds,
        })
        .collect())
}

/// An error the server answered, as the error a local run would have raised.
fn remote_error(status: u16, message: String) -> Error {
    match status {
        404 => Error::NotFound {
            class: "FeastError",
            message,
        },
        400..=499 => Error::invalid("request", message),
        503 => Error::Unavailable(message),
        _ => Error::Internal(message),
    }
}

/// The job report of a `202`/`200` answer, or the server's error.
async fn job_report(resp: reqwest::Response) -> Result<JobReport> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::Unavailable(format!("reading the server's answer: {e}")))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(remote_error(
            status.as_u16(),
            format!("the server answered {status}: {detail}"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| Error::Internal(format!("the server's job report: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        assert_eq!(
            local_url("http", "0.0.0.0:6566".parse().unwrap()),
            "http://127.0.0.1:6566"
        );
        assert_eq!(local_url("http", "[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(local_url("https", "10.1.2.3:9".parse().unwrap()), "https://10.1.2.3:9");
    }

    #[test]
    fn an_advertisement_is_found_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find(dir.path()), None);
        let addr = ServerAddress {
            pid: 42,
            project: "p".into(),
            url: "http://127.0.0.1:1".into(),
        };
        let ad = advertise(dir.path(), &addr).unwrap();
        assert_eq!(find(dir.path()), Some(addr));
        drop(ad);
        assert_eq!(find(dir.path()), None);
    }
}
