//! Redis and Redis Cluster online store.
//!
//! Layout: one Redis string per (project, view, entity key). The key is
//! `larder:<project>:<len(view)>:<view>:<Feast v3 entity key bytes>` (the length makes a view's
//! key prefix unambiguous, so deleting a view is a `SCAN MATCH <prefix>*`); the value is the
//! encoded [`OnlineRow`], whose fixed header carries the event and created timestamps.
//!
//! - Writes go through a Lua script that compares the headers of the stored and the new row
//!   byte by byte and keeps the newest `(event_ts, created_ts)` (a tie: the later write), so
//!   concurrent writers and out-of-order or replayed batches never move a key back in time. A
//!   script call covers up to [`WRITE_CHUNK`] keys of one hash slot (cluster) or of the batch
//!   (single server); calls run concurrently on the multiplexed connection.
//! - A read of several views is one `MGET` (one round trip to a single server; the cluster
//!   client splits it per node and runs the parts in parallel).
//! - Every operation is bounded by `operation_timeout_ms`; a server that is down, slow or
//!   unreachable gives [`Error::Unavailable`] (HTTP 503). The connection is re-established by
//!   the client on the next request, so serving recovers by itself.
//!
//! TLS (`ssl=true`, with `ssl_ca_certs` and `ssl_cert_reqs` as redis-py takes them) goes
//! through OpenSSL (native-tls).
//!
//! This is not Feast's Redis layout (one hash per entity key with murmur-hashed fields and a
//! read-then-write dedup): Larder's keeps the newest-wins check atomic and deletes a view by
//! its own key prefix.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script};
use tokio::sync::OnceCell;

use super::{OnlineRow, OnlineStore, ProjectedRows, ViewRead};
use crate::config::{RedisConfig, RedisType};
use crate::error::{Error, Result};

/// Most keys one write script call handles.
pub const WRITE_CHUNK: usize = 512;
/// Script calls in flight at once during a write.
const WRITE_CONCURRENCY: usize = 16;
/// Keys asked per `SCAN` step when deleting a view.
const SCAN_COUNT: usize = 1000;

/// Newest-wins upsert. KEYS: the row keys; ARGV[1]: key ttl in ms (0: none); ARGV[i+1]: the
/// encoded row for KEYS[i]. Header bytes (1-based): 1 format, 2..9 event ts (i64 LE),
/// 10..17 created ts (i64 LE). Returns how many keys were written.
/// The keys and encoded values of one write round trip.
type Chunk = (Vec<Vec<u8>>, Vec<Vec<u8>>);

const UPSERT_LUA: &str = r#"
local function cmp(a, b, hi, lo)
  for i = hi, lo, -1 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if i == hi then x = (x + 128) % 256; y = (y + 128) % 256 end
    if x ~= y then if x < y then return -1 else return 1 end end
  end
  return 0
end
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local old = redis.call('GET', key)
  local take = true
  if old and string.len(old) >= 17 and string.byte(old, 1) == string.byte(new, 1) then
    local c = cmp(new, old, 9, 2)
    if c == 0 then c = cmp(new, old, 17, 10) end
    take = c >= 0
  end
  if take then
    if ttl > 0 then redis.call('SET', key, new, 'PX', ttl) else redis.call('SET', key, new) end
    written = written + 1
  end
end
return written
"#;

/// A parsed Feast `connection_string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionTarget {
    /// `host:port` entries (startup nodes for a cluster).
    pub nodes: Vec<(String, u16)>,
    /// `password=...`.
    pub password: Option<String>,
    /// `username=...` (Redis ACL user).
    pub username: Option<String>,
    /// `db=N` (single server only).
    pub db: i64,
    /// `ssl=true`.
    pub ssl: bool,
    /// `ssl_ca_certs=PATH`: a PEM file of CA certificates to trust (else the system's).
    pub ssl_ca_certs: Option<String>,
    /// `ssl_cert_reqs=none` turns certificate verification off (redis-py's option).
    pub ssl_verify: bool,
}

/// Parses Feast's `host:port[,host:port...][,key=value...]` connection string.
pub fn parse_connection_string(text: &str) -> std::result::Result<ConnectionTarget, String> {
    let mut target = ConnectionTarget {
        nodes: Vec::new(),
        password: None,
        username: None,
        db: 0,
        ssl: false,
        ssl_ca_certs: None,
        ssl_verify: true,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = part.split_once('=') {
            match k.trim() {
                "password" => target.password = Some(v.to_string()),
                "username" => target.username = Some(v.to_string()),
                "db" => target.db = v.trim().parse().map_err(|_| format!("db: `{v}` is not an integer"))?,
                "ssl" => {
                    target.ssl = match v.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(format!("ssl: `{v}` is not true or false")),
                    }
                }
                "ssl_ca_certs" => target.ssl_ca_certs = Some(v.trim().to_string()),
                "ssl_cert_reqs" => {
                    target.ssl_verify = match v.trim().to_ascii_lowercase().as_str() {
                        "none" => false,
                        "required" | "optional" => true,
                        _ => return Err(format!("ssl_cert_reqs: `{v}` is not none, optional or required")),
                    }
                }
                other => {
                    return Err(format!(
                        "option `{other}` is not supported (supported: password, username, db, ssl, ssl_ca_certs, ssl_cert_reqs)"
                    ))
                }
            }
        } else {
            let (host, port) = match part.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| format!("`{part}`: the port is not a number"))?),
                None => (part, 6379),
            };
            target.nodes.push((host.to_string(), port));
        }
    }
    if target.nodes.is_empty() {
        return Err("no `host:port` given".into());
    }
    Ok(target)
}

/// Checks a Redis configuration without connecting (run when `feature_store.yaml` is read);
/// the message names the bad key.
pub fn check_config(config: &RedisConfig) -> std::result::Result<ConnectionTarget, String> {
    let target = parse_connection_string(&config.connection_string)
        .map_err(|e| config_error(format!("connection_string: {e}")))?;
    if let Some(path) = target.ssl_ca_certs.as_deref().filter(|_| target.ssl) {
        if !std::path::Path::new(path).is_file() {
            return Err(config_error(format!(
                "connection_string: ssl_ca_certs: {path} is not a file"
            )));
        }
    }
    if let Some(client) = config.client.as_deref().filter(|c| *c != "redis") {
        return Err(config_error(format!(
            "client: `{client}` is not supported (only `redis`)"
        )));
    }
    match config.redis_type {
        RedisType::RedisSentinel => Err(config_error(
            "redis_type: `redis_sentinel` is not supported (use `redis` or `redis_cluster`)",
        )),
        RedisType::Redis if target.nodes.len() != 1 => Err(config_error(
            "connection_string: several nodes given for redis_type `redis` (use `redis_cluster`)",
        )),
        RedisType::RedisCluster if target.db != 0 => {
            Err(config_error("connection_string: db must be 0 for a Redis Cluster"))
        }
        RedisType::RedisCluster if target.ssl && target.ssl_ca_certs.is_some() => Err(config_error(
            "connection_string: ssl_ca_certs is not supported for a Redis Cluster yet (its CA must be in the system trust store)",
        )),
        _ => Ok(target),
    }
}

/// A node's address: plain TCP, or TLS when `ssl=true`.
fn node_addr(target: &ConnectionTarget, host: String, port: u16) -> ConnectionAddr {
    if target.ssl {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: !target.ssl_verify,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// The CA certificates to trust, when `ssl_ca_certs` names a file.
#[allow(clippy::disallowed_methods, reason = "read once, when the store is opened")]
fn tls_certificates(target: &ConnectionTarget) -> std::result::Result<Option<redis::TlsCertificates>, String> {
    match target.ssl_ca_certs.as_deref().filter(|_| target.ssl) {
        None => Ok(None),
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| config_error(format!("connection_string: ssl_ca_certs: {path}: {e}")))?;
            Ok(Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            }))
        }
    }
}

enum Conn {
    Single(ConnectionManager),
    Cluster {
        client: Box<ClusterClient>,
        conn: OnceCell<ClusterConnection>,
    },
}

/// The Redis (or Redis Cluster) online store.
pub struct RedisOnlineStore {
    conn: Conn,
    describe: String,
    key_ttl_ms: u64,
    connect_timeout: Duration,
    op_timeout: Duration,
    upsert: Script,
}

impl std::fmt::Debug for RedisOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOnlineStore").field("at", &self.describe).finish()
    }
}

fn config_error(message: impl Display) -> String {
    format!("online_store (redis): {message}")
}

impl RedisOnlineStore {
    /// Prepares the store; the connection is made on first use (and re-made after failures),
    /// so a server starts, and answers 503, while Redis is still down. Errors name the bad
    /// configuration key.
    pub fn open(config: &RedisConfig) -> std::result::Result<Self, String> {
        let target = check_config(config)?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms.max(1));
        let op_timeout = Duration::from_millis(config.operation_timeout_ms.max(1));
        let describe = target
            .nodes
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let redis_err = |e: redis::RedisError| config_error(e);
        let conn = match config.redis_type {
            RedisType::RedisSentinel => return Err(config_error("redis_type: `redis_sentinel` is not supported")),
            RedisType::Redis => {
                let (host, port) = target.nodes[0].clone();
                let mut settings = RedisConnectionInfo::default().set_db(target.db);
                if let Some(p) = &target.password {
                    settings = settings.set_password(p);
                }
                if let Some(u) = &target.username {
                    settings = settings.set_username(u);
                }
                let info = node_addr(&target, host, port)
                    .into_connection_info()
                    .map_err(redis_err)?
                    .set_redis_settings(settings);
                let client = match tls_certificates(&target)? {
                    Some(certs) => redis::Client::build_with_tls(info, certs).map_err(redis_err)?,
                    None => redis::Client::open(info).map_err(redis_err)?,
                };
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(op_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Conn::Single(ConnectionManager::new_lazy_with_config(client, manager_config).map_err(redis_err)?)
            }
            RedisType::RedisCluster => {
                let nodes: Vec<_> = target
                    .nodes
                    .iter()
                    .map(|(h, p)| node_addr(&target, h.clone(), *p))
                    .collect();
                let mut builder = ClusterClient::builder(nodes)
                    .connection_timeout(connect_timeout)
                    .response_timeout(op_timeout)
                    .retries(1);
                if target.ssl {
                    builder = builder.tls(if target.ssl_verify {
                        redis::TlsMode::Secure
                    } else {
                        redis::TlsMode::Insecure
                    });
                }
                if let Some(p) = &target.password {
                    builder = builder.password(p.clone());
                }
                if let Some(u) = &target.username {
                    builder = builder.username(u.clone());
                }
                Conn::Cluster {
                    client: Box::new(builder.build().map_err(redis_err)?),
                    conn: OnceCell::new(),
                }
            }
        };
        Ok(RedisOnlineStore {
            conn,
            describe,
            key_ttl_ms: config.key_ttl_seconds.unwrap_or(0).saturating_mul(1000),
            connect_timeout,
            op_timeout,
            upsert: Script::new(UPSERT_LUA),
        })
    }

    /// `key_ttl_seconds`, when set.
    pub(crate) fn key_ttl_seconds(&self) -> Option<u64> {
        Some(self.key_ttl_ms / 1000).filter(|s| *s > 0)
    }

    fn unavailable(&self, what: &str, e: impl Display) -> Error {
        Error::Unavailable(format!("redis online store at {}: {what} failed: {e}", self.describe))
    }

    /// Runs one Redis operation under the operation timeout.
    async fn bounded<T>(&self, what: &str, fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(what, e)),
            Err(_) => Err(self.unavailable(what, format!("no answer within {} ms", self.op_timeout.as_millis()))),
        }
    }

    async fn cluster(&self, client: &ClusterClient, cell: &OnceCell<ClusterConnection>) -> Result<ClusterConnection> {
        let conn = tokio::time::timeout(
            self.connect_timeout + self.op_timeout,
            cell.get_or_try_init(|| client.get_async_connection()),
        )
        .await
        .map_err(|_| self.unavailable("connecting", "timed out"))?
        .map_err(|e| self.unavailable("connecting", e))?;
        Ok(conn.clone())
    }

    /// The stored values of every key of `requests`, in order, in one `MGET`.
    async fn mget(&self, project: &str, requests: &[(&str, &[Vec<u8>])]) -> Result<Vec<Option<Vec<u8>>>> {
        let total: usize = requests.iter().map(|(_, k)| k.len()).sum();
        if total == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for (view, keys) in requests {
            let prefix = view_prefix(project, view);
            for k in keys.iter() {
                cmd.arg(row_key(&prefix, k));
            }
        }
        let values: Vec<Option<Vec<u8>>> = self.query("read", &cmd).await?;
        if values.len() != total {
            return Err(self.unavailable("read", format!("{} answers for {total} keys", values.len())));
        }
        Ok(values)
    }

    /// Runs `cmd` and decodes its answer.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Result<T> {
        match &self.conn {
            Conn::Single(m) => {
                let mut c = m.clone();
                self.bounded(what, cmd.query_async(&mut c)).await
            }
            Conn::Cluster { client, conn } => {
                let mut c = self.cluster(client, conn).await?;
                self.bounded(what, cmd.query_async(&mut c)).await
            }
        }
    }

    /// One upsert script call.
    /// Writes `rows` in chunks (one slot each on a cluster): newest-wins upserts (the Lua
    /// script), or plain SETs when `replace` (the caller read the rows it supersedes).
    async fn write_rows(&self, project: &str, view: &str, rows: Vec<OnlineRow>, replace: bool) -> Result<usize> {
        let n = rows.len();
        let prefix = view_prefix(project, view);
        let mut groups: Vec<Chunk> = Vec::new();
        match &self.conn {
            Conn::Single(_) => {
                for chunk in rows.chunks(WRITE_CHUNK) {
                    let keys = chunk.iter().map(|r| row_key(&prefix, &r.key)).collect();
                    let values = chunk.iter().map(OnlineRow::encode_value).collect();
                    groups.push((keys, values));
                }
            }
            Conn::Cluster { .. } => {
                let mut by_slot: HashMap<Slot, Chunk> = HashMap::new();
                for r in &rows {
                    let key = row_key(&prefix, &r.key);
                    let group = by_slot.entry(Slot::for_key(&key)).or_default();
                    group.0.push(key);
                    group.1.push(r.encode_value());
                    if group.0.len() == WRITE_CHUNK {
                        groups.push(std::mem::take(group));
                    }
                }
                groups.extend(by_slot.into_values().filter(|g| !g.0.is_empty()));
            }
        }
        futures::stream::iter(groups)
            .map(|(keys, values)| async move {
                if replace {
                    self.set_chunk(keys, values).await
                } else {
                    self.upsert_chunk(keys, values).await.map(|_| ())
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        Ok(n)
    }

    /// SETs `values` at `keys` in one pipeline, with the key ttl.
    async fn set_chunk(&self, keys: Vec<Vec<u8>>, values: Vec<Vec<u8>>) -> Result<()> {
        let mut pipe = redis::pipe();
        for (k, v) in keys.iter().zip(&values) {
            pipe.cmd("SET").arg(k.as_slice()).arg(v.as_slice());
            if self.key_ttl_ms > 0 {
                pipe.arg("PX").arg(self.key_ttl_ms);
            }
            pipe.ignore();
        }
        match &self.conn {
            Conn::Single(m) => {
                let mut c = m.clone();
                self.bounded("write", pipe.query_async::<()>(&mut c)).await
            }
            Conn::Cluster { client, conn } => {
                let mut c = self.cluster(client, conn).await?;
                self.bounded("write", pipe.query_async::<()>(&mut c)).await
            }
        }
    }

    async fn upsert_chunk(&self, keys: Vec<Vec<u8>>, values: Vec<Vec<u8>>) -> Result<i64> {
        let mut inv = self.upsert.prepare_invoke();
        inv.arg(self.key_ttl_ms);
        for (k, v) in keys.iter().zip(&values) {
            inv.key(k.as_slice());
            inv.arg(v.as_slice());
        }
        match &self.conn {
            Conn::Single(m) => {
                let mut c = m.clone();
                self.bounded("write", inv.invoke_async(&mut c)).await
            }
            Conn::Cluster { client, conn } => {
                let mut c = self.cluster(client, conn).await?;
                self.bounded("write", inv.invoke_async(&mut c)).await
            }
        }
    }

    /// Keys matching `pattern`, from every master of a cluster or from the single server.
    async fn scan(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        match &self.conn {
            Conn::Single(_) => {
                let mut cursor = "0".to_string();
                loop {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(&cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
                    let (next, keys): (String, Vec<Vec<u8>>) = self.query("scan", &cmd).await?;
                    found.extend(keys);
                    if next == "0" {
                        break;
                    }
                    cursor = next;
                }
            }
            Conn::Cluster { client, conn } => {
                let mut c = self.cluster(client, conn).await?;
                let nodes: String = {
                    let mut cmd = redis::cmd("CLUSTER");
                    cmd.arg("NODES");
                    let v = self
                        .bounded(
                            "cluster nodes",
                            c.route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)),
                        )
                        .await?;
                    redis::from_redis_value(v).map_err(|e| self.unavailable("cluster nodes", e))?
                };
                for (host, port) in cluster_masters(&nodes) {
                    let mut cursor = "0".to_string();
                    loop {
                        let mut cmd = redis::cmd("SCAN");
                        cmd.arg(&cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let v = self.bounded("scan", c.route_command(cmd, route)).await?;
                        let (next, keys): (String, Vec<Vec<u8>>) =
                            redis::from_redis_value(v).map_err(|e| self.unavailable("scan", e))?;
                        found.extend(keys);
                        if next == "0" {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        Ok(found)
    }
}

/// `host:port` of every master that is not marked failed, from `CLUSTER NODES` output.
fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let addr = fields.next()?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let hostport = addr.split(['@', ',']).next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

/// The key prefix of one view.
fn view_prefix(project: &str, view: &str) -> Vec<u8> {
    format!("larder:{project}:{}:{view}:", view.len()).into_bytes()
}

fn row_key(prefix: &[u8], entity_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + entity_key.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(entity_key);
    k
}

/// Escapes Redis glob metacharacters.
fn glob_escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    for &b in bytes {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[async_trait]
impl OnlineStore for RedisOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        self.write_rows(project, view, rows, false).await
    }

    async fn write_replacing(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        self.write_rows(project, view, rows, true).await
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let mut out = self.read_many(project, &[(view, keys)]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn read_many(&self, project: &str, requests: &[(&str, &[Vec<u8>])]) -> Result<Vec<Vec<Option<OnlineRow>>>> {
        if requests.iter().all(|(_, k)| k.is_empty()) {
            return Ok(requests.iter().map(|_| Vec::new()).collect());
        }
        let values = self.mget(project, requests).await?;
        decode_rows(requests, values, |i, key, bytes| {
            OnlineRow::decode(key.to_vec(), bytes).map_err(|e| corrupt(requests[i].0, e))
        })
    }

    async fn read_projected(&self, project: &str, reads: &[ViewRead<'_>]) -> Result<Vec<ProjectedRows>> {
        let requests: Vec<(&str, &[Vec<u8>])> = reads.iter().map(|r| (r.view, r.keys)).collect();
        let mut values = self.mget(project, &requests).await?.into_iter();
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            let mut block = ProjectedRows::new(read.keys.len(), read.projection.len());
            for (row, value) in values.by_ref().take(read.keys.len()).enumerate() {
                if let Some(bytes) = value {
                    let ts = OnlineRow::decode_projected_into(&bytes, read.projection, block.row_mut(row), &|_| None)
                        .map_err(|e| corrupt(read.view, e))?;
                    block.event_ts[row] = Some(ts);
                }
            }
            out.push(block);
        }
        Ok(out)
    }

    async fn delete_view(&self, project: &str, view: &str) -> Result<()> {
        let mut pattern = glob_escape(&view_prefix(project, view));
        pattern.push(b'*');
        let keys = self.scan(&pattern).await?;
        for chunk in keys.chunks(SCAN_COUNT) {
            let mut cmd = redis::cmd("UNLINK");
            for k in chunk {
                cmd.arg(k.as_slice());
            }
            let _: i64 = self.query("delete", &cmd).await?;
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn health(&self) -> Result<()> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }
}

/// Splits the answers of one `MGET` by request, decoding each stored value with
/// `decode(request index, entity key, value)`.
fn decode_rows<T>(
    requests: &[(&str, &[Vec<u8>])],
    values: Vec<Option<Vec<u8>>>,
    mut decode: impl FnMut(usize, &[u8], &[u8]) -> Result<T>,
) -> Result<Vec<Vec<Option<T>>>> {
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(requests.len());
    for (i, (_, keys)) in requests.iter().enumerate() {
        let mut rows = Vec::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(values.by_ref()) {
            rows.push(match v {
                None => None,
                Some(bytes) => Some(decode(i, k, &bytes)?),
            });
        }
        out.push(rows);
    }
    Ok(out)
}

fn corrupt(view: &str, e: larder_protocol::ValueError) -> Error {
    Error::Internal(format!("corrupt online row for view {view} in redis: {}", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_as_feast_writes_them() {
        let t = parse_connection_string("127.0.0.1:6380,password=s3cret,db=2").unwrap();
        assert_eq!(t.nodes, vec![("127.0.0.1".to_string(), 6380)]);
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.db, 2);
        assert!(!t.ssl);
        let t = parse_connection_string("a:7000, b:7001,ssl=true,username=u").unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert!(t.ssl);
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(parse_connection_string("redis-host").unwrap().nodes[0].1, 6379);
        assert!(parse_connection_string("h:x").unwrap_err().contains("port"));
        assert!(parse_connection_string("h:1,db=two").unwrap_err().contains("db"));
        assert!(
            !parse_connection_string("h:1,ssl=true,ssl_cert_reqs=none")
                .unwrap()
                .ssl_verify
        );
        assert!(parse_connection_string("h:1,ssl_cert_reqs=maybe")
            .unwrap_err()
            .contains("ssl_cert_reqs"));
        assert!(parse_connection_string("h:1,ssl_keyfile=k")
            .unwrap_err()
            .contains("ssl_keyfile"));
        assert!(parse_connection_string("password=x").unwrap_err().contains("host:port"));
    }

    #[test]
    fn view_prefixes_do_not_overlap_and_globs_are_escaped() {
        assert_eq!(view_prefix("p", "v"), b"larder:p:1:v:".to_vec());
        assert!(!view_prefix("p", "v:x").starts_with(&view_prefix("p", "v")));
        assert_eq!(glob_escape(b"a*b[c]?\\"), b"a\\*b\\[c\\]\\?\\\\".to_vec());
    }

    #[test]
    fn cluster_masters_are_read_from_cluster_nodes() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922\n\
                    c3 127.0.0.1:7002@17002 slave a1 0 0 1 connected\n\
                    d4 127.0.0.1:7003@17003 master,fail - 0 0 3 connected\n";
        assert_eq!(
            cluster_masters(text),
            vec![("127.0.0.1".to_string(), 7000), ("127.0.0.1".to_string(), 7001)]
        );
    }
}
