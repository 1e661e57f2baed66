//! Prometheus metrics (`GET /metrics`), through the `metrics` facade.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `larder_http_requests_total` | route, method, status | requests answered |
//! | `larder_http_request_duration_seconds` | route, status | latency histogram |
//! | `larder_online_read_duration_seconds` | backend | one online-store read (all views of a request) |
//! | `larder_materialized_rows_total` | view | rows written by materialization |
//! | `larder_pushed_rows_total` | push_source, to | rows accepted by `/push` |
//! | `larder_rejected_requests_total` | route, reason | requests refused: `invalid`, `overloaded`, `timeout` |
//! | `larder_registry_version` | | registry version being served |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, in seconds: 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once); `None` when another recorder is
/// already installed.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The metrics in Prometheus' text format.
pub fn render() -> String {
    match install() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}
