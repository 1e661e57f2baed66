//! The online handler through the whole router in-process (`oneshot`: middleware, parsing, plan,
//! RocksDB read, JSON), for the serving benchmark's shapes: 1 and 10 entities x 3 features, and
//! Feast's published shapes, 1 / 100 / 500 entities x 50 features over 5 views. No network and
//! no load generator: what each change to the request path gains shows here first; the wrk
//! benchmark against the bare-axum floor and Feast is `benches/online_serving.sh`.
//!
//!     cargo bench -p larder-server --bench online_handler

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

#[path = "../tests/support/wide.rs"]
mod wide;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wide::Wide;

fn online_handler(c: &mut Criterion) {
    let w = Wide::start(None);
    let mut group = c.benchmark_group("get_online_features");
    for (entities, features) in [(1, 3), (10, 3), (1, 50), (100, 50), (500, 50)] {
        let body = Wide::body(entities, features);
        assert_eq!(w.send(&body).0, 200);
        group.throughput(Throughput::Elements((entities * features) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{entities}x{features}")),
            &body,
            |b, body| b.iter(|| w.send(body)),
        );
    }
    group.finish();
}

criterion_group!(benches, online_handler);
criterion_main!(benches);
