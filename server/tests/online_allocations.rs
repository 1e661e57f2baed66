//! Heap allocations per `/get-online-features` request, through the whole router (middleware,
//! parsing, plan, RocksDB read, JSON), counted by a counting global allocator, for the shapes of
//! the serving benchmark. The bounds are regression gates, set about a third above what this
//! code measured: a change that brings back per-cell allocation (a name per stored feature, a
//! clone per value, a formatted string per timestamp) fails here. The answers are checked
//! against values computed from the fixture's formula, so the counts are of real work.

#[path = "support/wide.rs"]
mod wide;

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use wide::{value, Wide};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The fewest allocations one request of `body` made over a few runs (after a warm-up that
/// compiles the plan and fills the caches).
fn allocations(w: &Wide, body: &[u8]) -> usize {
    for _ in 0..3 {
        assert_eq!(w.send(body).0, 200);
    }
    (0..5)
        .map(|_| {
            let region = Region::new(GLOBAL);
            let (status, _) = w.send(body);
            let change = region.change();
            assert_eq!(status, 200);
            change.allocations + change.reallocations
        })
        .min()
        .unwrap()
}

#[test]
fn requests_allocate_per_column_not_per_cell() {
    let w = Wide::start(None);

    // The answers are the fixture's values.
    let (status, body) = w.send(&Wide::body(3, 50));
    assert_eq!(status, 200);
    let out: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names = out["metadata"]["feature_names"].as_array().unwrap();
    assert_eq!(names.len(), 51);
    for (f, col) in out["results"].as_array().unwrap()[1..].iter().enumerate() {
        assert_eq!(names[f + 1], format!("f{f}"));
        for (row, v) in col["values"].as_array().unwrap().iter().enumerate() {
            let expected = match wide::dtype(f) {
                "FLOAT" => value(row as i64 + 1, f) as f32 as f64,
                "DOUBLE" => value(row as i64 + 1, f),
                _ => value(row as i64 + 1, f).trunc(),
            };
            assert_eq!(v.as_f64().unwrap(), expected, "f{f} row {row}");
        }
        assert!(col["statuses"].as_array().unwrap().iter().all(|s| s == "PRESENT"));
        assert!(col["event_timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t == "2024-01-01T00:00:00Z"));
    }

    // (entities, features, most allocations per request)
    let cases = [
        (1, 3, 180),
        (10, 3, 200),
        (1, 50, 500),
        (100, 50, 1_450),
        (500, 50, 4_600),
    ];
    let mut report = Vec::new();
    for (entities, features, bound) in cases {
        let n = allocations(&w, &Wide::body(entities, features));
        report.push(format!("{entities} x {features}: {n} allocations"));
        assert!(
            n <= bound,
            "{entities} x {features}: {n} allocations per request, more than {bound}"
        );
    }
    eprintln!("{}", report.join("\n"));
}
