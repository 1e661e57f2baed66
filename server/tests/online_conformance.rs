//! One conformance suite for every online store: the same checks run against RocksDB, a single
//! real `redis-server` and a real three-master Redis Cluster (started on free loopback ports).

mod support;

use std::sync::Arc;
use std::time::Duration;

use larder_server::config::{RedisConfig, RedisType, RocksDbConfig};
use larder_server::online::postgres::PostgresOnlineStore;
use larder_server::online::redis::RedisOnlineStore;
use larder_server::online::rocksdb::RocksDbOnlineStore;
use larder_server::online::sqlite::SqliteOnlineStore;
use larder_server::online::{OnlineRow, OnlineStore};
use larder_server::value::Value;
use support::{PostgresProcess, RedisCluster, RedisProcess};

fn key(i: u64) -> Vec<u8> {
    // Feast v3 layout for {driver_id: int64 i}.
    let mut k = Vec::new();
    k.extend_from_slice(&1u32.to_le_bytes());
    k.extend_from_slice(&2u32.to_le_bytes());
    k.extend_from_slice(&9u32.to_le_bytes());
    k.extend_from_slice(b"driver_id");
    k.extend_from_slice(&4u32.to_le_bytes());
    k.extend_from_slice(&8u32.to_le_bytes());
    k.extend_from_slice(&i.to_le_bytes());
    k
}

fn row(i: u64, ts: i64, created: Option<i64>, v: f64) -> OnlineRow {
    OnlineRow {
        key: key(i),
        event_ts: ts,
        created_ts: created,
        values: vec![("f".into(), Value::Double(v))],
    }
}

fn value_of(r: &Option<OnlineRow>) -> Option<f64> {
    match r.as_ref()?.get("f")? {
        Value::Double(v) => Some(*v),
        other => panic!("unexpected {other:?}"),
    }
}

fn redis_config(connection_string: String, redis_type: RedisType, key_ttl_seconds: Option<u64>) -> RedisConfig {
    RedisConfig {
        redis_type,
        connection_string,
        key_ttl_seconds,
        sentinel_master: None,
        full_scan_for_deletion: None,
        skip_dedup: None,
        client: None,
        connect_timeout_ms: 1000,
        operation_timeout_ms: 5000,
    }
}

/// Runs every check against `store`.
async fn conformance(store: Arc<dyn OnlineStore>) {
    store.health().await.expect("health");
    round_trip_of_every_value_type(&*store).await;
    newest_wins_on_out_of_order_writes(&*store).await;
    replacing_writes_give_the_successor(&*store).await;
    unknown_keys_and_order(&*store).await;
    many_keys_across_views(&*store).await;
    delete_removes_only_that_view(&*store).await;
    concurrent_writers_converge_on_the_newest(Arc::clone(&store)).await;
}

async fn round_trip_of_every_value_type(store: &dyn OnlineStore) {
    let values = vec![
        ("null".to_string(), Value::Null),
        ("bytes".into(), Value::Bytes(vec![0, 255, 7])),
        ("string".into(), Value::String("héllo".into())),
        ("int32".into(), Value::Int32(-7)),
        ("int64".into(), Value::Int64(i64::MIN + 1)),
        ("double".into(), Value::Double(0.1)),
        ("float".into(), Value::Float(1.5)),
        ("bool".into(), Value::Bool(true)),
        ("ts".into(), Value::UnixTimestamp(1_700_000_000)),
        (
            "doubles".into(),
            Value::List(vec![Value::Double(1.0), Value::Null, Value::Double(-2.5)]),
        ),
        (
            "strings".into(),
            Value::List(vec![Value::String("a".into()), Value::String(String::new())]),
        ),
        ("empty".into(), Value::List(vec![])),
        ("int64s".into(), Value::List(vec![Value::Int64(1), Value::Int64(2)])),
        ("bools".into(), Value::List(vec![Value::Bool(false)])),
        (
            "map".into(),
            Value::Map(vec![
                ("vehicle".into(), Value::String("suv".into())),
                ("seats".into(), Value::Int64(7)),
            ]),
        ),
        ("json".into(), Value::Json(r#"{"zones": ["west"]}"#.into())),
        (
            "structs".into(),
            Value::List(vec![Value::Map(vec![("age".into(), Value::String("52".into()))])]),
        ),
    ];
    let r = OnlineRow {
        key: key(1),
        event_ts: 1_700_000_000_123_456_789,
        created_ts: Some(1_700_000_001_000_000_000),
        values,
    };
    store.write_batch("conf", "types", vec![r.clone()]).await.unwrap();
    let got = store.read("conf", "types", &[key(1)]).await.unwrap();
    assert_eq!(got, vec![Some(r)]);
}

async fn newest_wins_on_out_of_order_writes(store: &dyn OnlineStore) {
    let v = "order";
    store
        .write_batch(
            "conf",
            v,
            vec![row(1, 100, None, 1.0), row(2, 50, Some(10), 1.0), row(3, -5, None, 1.0)],
        )
        .await
        .unwrap();
    // Older event time: ignored; same event time and newer created time: wins; negative
    // timestamps (before 1970) compare correctly; the same row again is harmless.
    store
        .write_batch(
            "conf",
            v,
            vec![
                row(1, 99, Some(i64::MAX), 2.0),
                row(2, 50, Some(11), 2.0),
                row(3, -6, None, 2.0),
            ],
        )
        .await
        .unwrap();
    store
        .write_batch("conf", v, vec![row(2, 50, Some(9), 3.0), row(3, -4, None, 3.0)])
        .await
        .unwrap();
    store
        .write_batch("conf", v, vec![row(1, 100, None, 1.0)])
        .await
        .unwrap();
    // A row with a much larger timestamp that differs only in a high byte.
    store
        .write_batch("conf", v, vec![row(4, 1 << 40, None, 1.0)])
        .await
        .unwrap();
    store
        .write_batch("conf", v, vec![row(4, (1 << 40) - 1, None, 2.0)])
        .await
        .unwrap();
    store
        .write_batch("conf", v, vec![row(4, 255, None, 3.0)])
        .await
        .unwrap();
    let got = store.read("conf", v, &[key(1), key(2), key(3), key(4)]).await.unwrap();
    let vals: Vec<_> = got.iter().map(value_of).collect();
    assert_eq!(vals, vec![Some(1.0), Some(2.0), Some(3.0), Some(1.0)]);
    assert_eq!(got[1].as_ref().unwrap().created_ts, Some(11));
}

/// `write_replacing` (a read-modify-write's successor rows, newer than what was read): the
/// successor is what is read back, new keys are created, and newest-wins writes on top still
/// ignore older rows.
async fn replacing_writes_give_the_successor(store: &dyn OnlineStore) {
    let v = "replacing";
    store
        .write_batch("conf", v, vec![row(1, 100, None, 1.0), row(2, 100, None, 1.0)])
        .await
        .unwrap();
    store
        .write_replacing("conf", v, vec![row(1, 200, None, 2.0), row(3, 150, None, 3.0)])
        .await
        .unwrap();
    store
        .write_batch("conf", v, vec![row(1, 150, None, 9.0), row(3, 160, None, 4.0)])
        .await
        .unwrap();
    let got = store.read("conf", v, &[key(1), key(2), key(3)]).await.unwrap();
    let vals: Vec<_> = got.iter().map(value_of).collect();
    assert_eq!(vals, vec![Some(2.0), Some(1.0), Some(4.0)]);
    assert_eq!(got[0].as_ref().unwrap().event_ts, 200);
}

async fn unknown_keys_and_order(store: &dyn OnlineStore) {
    let v = "unknown";
    store
        .write_batch("conf", v, vec![row(10, 1, None, 10.0), row(12, 1, None, 12.0)])
        .await
        .unwrap();
    let got = store
        .read("conf", v, &[key(12), key(11), key(10), key(12)])
        .await
        .unwrap();
    let vals: Vec<_> = got.iter().map(value_of).collect();
    assert_eq!(vals, vec![Some(12.0), None, Some(10.0), Some(12.0)]);
    assert!(store.read("conf", "no_such_view", &[key(10)]).await.unwrap()[0].is_none());
    assert!(store.read("other_project", v, &[key(10)]).await.unwrap()[0].is_none());
    assert!(store.read("conf", v, &[]).await.unwrap().is_empty());
}

async fn many_keys_across_views(store: &dyn OnlineStore) {
    let n = 5000u64;
    let a: Vec<_> = (0..n).map(|i| row(i, 1_000, None, i as f64)).collect();
    let b: Vec<_> = (0..n).step_by(2).map(|i| row(i, 1_000, None, -(i as f64))).collect();
    assert_eq!(store.write_batch("conf", "many_a", a).await.unwrap(), n as usize);
    store.write_batch("conf", "many_b", b).await.unwrap();
    let keys: Vec<_> = (0..n).rev().map(key).collect();
    let got = store
        .read_many("conf", &[("many_a", keys.as_slice()), ("many_b", keys.as_slice())])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    for (j, i) in (0..n).rev().enumerate() {
        assert_eq!(value_of(&got[0][j]), Some(i as f64));
        assert_eq!(value_of(&got[1][j]), (i % 2 == 0).then_some(-(i as f64)));
    }
}

async fn delete_removes_only_that_view(store: &dyn OnlineStore) {
    let rows = |v: f64| (0..3000).map(|i| row(i, 1, None, v)).collect::<Vec<_>>();
    store.write_batch("conf", "del", rows(1.0)).await.unwrap();
    store.write_batch("conf", "del_kept", rows(2.0)).await.unwrap();
    store.write_batch("conf", "de", rows(3.0)).await.unwrap();
    store.write_batch("conf2", "del", rows(4.0)).await.unwrap();
    store.delete_view("conf", "del").await.unwrap();
    let keys: Vec<_> = (0..3000).map(key).collect();
    assert!(store
        .read("conf", "del", &keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
    assert!(store
        .read("conf", "del_kept", &keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));
    assert!(store
        .read("conf", "de", &keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));
    assert!(store
        .read("conf2", "del", &keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));
    // Deleting again, or a view that never existed, is fine; a deleted view can be rewritten.
    store.delete_view("conf", "del").await.unwrap();
    store.delete_view("conf", "never").await.unwrap();
    store
        .write_batch("conf", "del", vec![row(1, 0, None, 9.0)])
        .await
        .unwrap();
    assert_eq!(
        value_of(&store.read("conf", "del", &[key(1)]).await.unwrap()[0]),
        Some(9.0)
    );
}

async fn concurrent_writers_converge_on_the_newest(store: Arc<dyn OnlineStore>) {
    let keys = 200u64;
    let writers = 8i64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Each writer writes versions w, w + writers, ... in an order that differs per writer.
            for round in 0..5i64 {
                let version = if w % 2 == 0 {
                    round * writers + w
                } else {
                    (4 - round) * writers + w
                };
                let batch = (0..keys).map(|i| row(i, version, None, version as f64)).collect();
                store.write_batch("conf", "concurrent", batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let newest = (4 * writers + writers - 1) as f64;
    let got = store
        .read("conf", "concurrent", &(0..keys).map(key).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        got.iter().all(|r| value_of(r) == Some(newest)),
        "every key holds version {newest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
    conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOnlineStore::open(&dir.path().join("data/online_store.db")).unwrap();
    conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_shared_by_two_processes_worth_of_connections() {
    // Unlike RocksDB, a SQLite file may be open in a serving process and a `larder
    // materialize` at once: a write through one handle is read through the other.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.db");
    let a = SqliteOnlineStore::open(&path).unwrap();
    let b = SqliteOnlineStore::open(&path).unwrap();
    a.write_batch("p", "v", vec![row(1, 10, None, 1.5)]).await.unwrap();
    let got = b.read("p", "v", &[key(1)]).await.unwrap();
    assert_eq!(value_of(&got[0]), Some(1.5));
    b.write_batch("p", "v", vec![row(1, 5, None, 9.0)]).await.unwrap();
    assert_eq!(
        value_of(&a.read("p", "v", &[key(1)]).await.unwrap()[0]),
        Some(1.5),
        "older write ignored"
    );
}

fn postgres_config(port: u16, op_timeout_ms: u64) -> larder_server::config::PostgresOnlineConfig {
    let yaml = format!(
        "host: 127.0.0.1\nport: {port}\ndatabase: online\nuser: larder\ndb_schema: feast_online\n\
         operation_timeout_ms: {op_timeout_ms}\nconnect_timeout_ms: 500\n"
    );
    serde_yaml_ng::from_str(&yaml).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let pg = tokio::task::spawn_blocking(PostgresProcess::start).await.unwrap();
    let store = PostgresOnlineStore::open(&postgres_config(pg.port, 5000)).unwrap();
    conformance(Arc::new(store)).await;
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_unavailable_quickly() {
    let pg = tokio::task::spawn_blocking(PostgresProcess::start).await.unwrap();
    let port = pg.port;
    let store = PostgresOnlineStore::open(&postgres_config(port, 2000)).unwrap();
    store.write_batch("p", "v", vec![row(1, 10, None, 2.5)]).await.unwrap();
    drop(pg);
    let t0 = std::time::Instant::now();
    let err = store.read("p", "v", &[key(1)]).await.unwrap_err();
    assert!(matches!(err, larder_server::Error::Unavailable(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert!(store.health().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conforms() {
    let server = RedisProcess::start(false);
    let store = RedisOnlineStore::open(&redis_config(server.connection_string(), RedisType::Redis, None)).unwrap();
    conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conforms() {
    let cluster = RedisCluster::start();
    let store = RedisOnlineStore::open(&redis_config(
        cluster.connection_string(),
        RedisType::RedisCluster,
        None,
    ))
    .unwrap();
    conformance(Arc::new(store)).await;
    // The rows really are spread over the three masters.
    for n in &cluster.nodes {
        let size: u64 = support::cli(n.port, &["DBSIZE"]).trim().parse().unwrap();
        assert!(size > 1000, "node {} holds {size} keys", n.port);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_expire_after_key_ttl_seconds() {
    let server = RedisProcess::start(false);
    let store = RedisOnlineStore::open(&redis_config(server.connection_string(), RedisType::Redis, Some(1))).unwrap();
    store
        .write_batch("conf", "ttl", vec![row(1, 1, None, 1.0)])
        .await
        .unwrap();
    // Replacing writes (plain SETs) carry the ttl too.
    store
        .write_replacing("conf", "ttl", vec![row(2, 1, None, 1.0)])
        .await
        .unwrap();
    let both = store.read("conf", "ttl", &[key(1), key(2)]).await.unwrap();
    assert!(both.iter().all(Option::is_some));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let both = store.read("conf", "ttl", &[key(1), key(2)]).await.unwrap();
    assert!(both.iter().all(Option::is_none), "the keys expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_unavailable_quickly_and_recovers() {
    let server = RedisProcess::start(false);
    let mut config = redis_config(server.connection_string(), RedisType::Redis, None);
    config.operation_timeout_ms = 500;
    config.connect_timeout_ms = 300;
    let store = RedisOnlineStore::open(&config).unwrap();
    store
        .write_batch("conf", "down", vec![row(1, 1, None, 1.0)])
        .await
        .unwrap();
    let port = server.port;
    drop(server);
    let start = std::time::Instant::now();
    let err = store.read("conf", "down", &[key(1)]).await.unwrap_err();
    assert!(matches!(err, larder_server::Error::Unavailable(_)), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "bounded: {:?}",
        start.elapsed()
    );
    assert!(store.health().await.is_err());
    // A server comes back on the same port: the store reconnects by itself.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::wait_for(|| support::cli(port, &["PING"]).trim() == "PONG", "redis to restart");
    let mut recovered = false;
    for _ in 0..50 {
        if store
            .write_batch("conf", "down", vec![row(1, 2, None, 2.0)])
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(recovered, "the store reconnected after redis came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_gives_unavailable_within_the_timeout() {
    let server = RedisProcess::start(false);
    let mut config = redis_config(server.connection_string(), RedisType::Redis, None);
    config.operation_timeout_ms = 400;
    let store = RedisOnlineStore::open(&config).unwrap();
    store
        .write_batch("conf", "hung", vec![row(1, 1, None, 1.0)])
        .await
        .unwrap();
    server.signal("STOP");
    let start = std::time::Instant::now();
    let err = store.read("conf", "hung", &[key(1)]).await.unwrap_err();
    let waited = start.elapsed();
    server.signal("CONT");
    assert!(matches!(err, larder_server::Error::Unavailable(_)), "{err}");
    assert!(waited < Duration::from_secs(2), "bounded: {waited:?}");
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(rows) = store.read("conf", "hung", &[key(1)]).await {
            assert_eq!(value_of(&rows[0]), Some(1.0));
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "reads work again once redis resumes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_conforms() {
    let (server, ca) = RedisProcess::start_tls();
    let conn = format!("127.0.0.1:{},ssl=true,ssl_ca_certs={}", server.port, ca.display());
    let store = RedisOnlineStore::open(&redis_config(conn, RedisType::Redis, None)).unwrap();
    store.health().await.expect("TLS connection with the test CA");
    round_trip_of_every_value_type(&store).await;
    newest_wins_on_out_of_order_writes(&store).await;
    delete_removes_only_that_view(&store).await;
    // The system trust store does not know the test CA: refused, clearly.
    let mut config = redis_config(format!("127.0.0.1:{},ssl=true", server.port), RedisType::Redis, None);
    config.operation_timeout_ms = 1000;
    let untrusted = RedisOnlineStore::open(&config).unwrap();
    let err = untrusted.health().await.unwrap_err();
    assert!(matches!(err, larder_server::Error::Unavailable(_)), "{err}");
    // A plain-TCP client gets no answer from a TLS port: an error, not a hang.
    let plain = RedisOnlineStore::open(&redis_config(
        format!("127.0.0.1:{}", server.port),
        RedisType::Redis,
        None,
    ))
    .unwrap();
    assert!(plain.health().await.is_err());
}
