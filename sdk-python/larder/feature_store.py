"""``FeatureStore``: Feast's client API against a running ``larder serve``.

Bulk data travels as Arrow IPC (``POST /get-historical-features``) or Arrow Flight, never as
JSON. On-demand feature views are computed by the server, online and offline alike.
"""

import datetime
import enum
import json
import os
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

DEFAULT_URL = "http://127.0.0.1:6566"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


from larder.data_source import PushMode  # noqa: E402 (Feast's home of PushMode)


def _json_value(v):
    """A pandas/numpy cell as a JSON value (timestamps as ISO 8601, NaN/NaT as null)."""
    import numpy as np
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    if isinstance(v, (pd.Timestamp, datetime.datetime)):
        if pd.isna(v):
            return None
        t = pd.Timestamp(v)
        return (t.tz_convert("UTC") if t.tzinfo else t).isoformat()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    if v is pd.NaT:
        return None
    return v


def _columns(df) -> Dict[str, List[Any]]:
    """Feast's columnar ``df`` from a pandas DataFrame, a pyarrow Table or a dict of lists."""
    if isinstance(df, dict):
        return {k: [_json_value(x) for x in v] for k, v in df.items()}
    if hasattr(df, "to_pandas") and not hasattr(df, "iloc"):
        df = df.to_pandas()
    return {str(c): [_json_value(x) for x in df[c].tolist()] for c in df.columns}


def _time(t) -> str:
    import pandas as pd

    ts = pd.Timestamp(t)
    return (ts.tz_convert("UTC") if ts.tzinfo else ts).isoformat()


class LarderError(Exception):
    """An error answered by the server; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _error_message(resp) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    if isinstance(body, str):  # Feast's error detail: a JSON string holding {module, class, message}
        try:
            return json.loads(body).get("message", body)
        except ValueError:
            return body
    if isinstance(body, dict) and "detail" in body:
        return "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in body["detail"])
    return resp.text


def _ns(obj):
    if isinstance(obj, dict):
        return types.SimpleNamespace(**{k: _ns(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_ns(v) for v in obj]
    return obj


#: Entity rows from which ``get_online_features`` asks for the Arrow answer (when pyarrow is
#: installed): decoding it costs a fraction of decoding the same cells from JSON.
ARROW_ONLINE_ROWS = 1000


def _feast_time(ns: int) -> str:
    """Nanoseconds since the epoch as Feast's JSON prints them (no fraction, or 3, 6 or 9
    digits, then ``Z``)."""
    import datetime as _dt

    secs, frac = divmod(ns, 1_000_000_000)
    text = (_dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return text + "Z"
    if frac % 1_000_000 == 0:
        return f"{text}.{frac // 1_000_000:03d}Z"
    if frac % 1_000 == 0:
        return f"{text}.{frac // 1_000:06d}Z"
    return f"{text}.{frac:09d}Z"


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


class OnlineResponse:
    """Feast's ``OnlineResponse``: ``to_dict()`` and ``to_df()`` (and ``to_arrow()`` when the
    answer came as Arrow)."""

    def __init__(self, body: dict, table=None):
        self.body = body
        self._table = table

    @classmethod
    def _from_arrow(cls, table) -> "OnlineResponse":
        """The JSON answer's shape from the server's Arrow answer: per output ``name``, the
        columns ``name``, ``name__status`` and ``name__event_timestamp``."""
        import base64
        import json as _json

        names = table.column_names[0::3]
        results = []
        for i, name in enumerate(names):
            field = table.schema.field(3 * i)
            dtype = (field.metadata or {}).get(b"larder.dtype", b"").decode()
            values = table.column(3 * i).to_pylist()
            if dtype in ("MAP", "STRUCT"):
                values = [None if v is None else _json.loads(v) for v in values]
            elif dtype == "BYTES":
                values = [None if v is None else base64.b64encode(v).decode() for v in values]
            stamps = table.column(3 * i + 2).cast("int64").to_pylist()
            results.append({"values": values, "statuses": table.column(3 * i + 1).to_pylist(),
                            "event_timestamps": [_feast_time(t) for t in stamps]})
        return cls({"metadata": {"feature_names": names}, "results": results}, table)

    def to_arrow(self):
        """The answer as a pyarrow Table (as the server sent it for large requests; built from
        the JSON answer otherwise)."""
        if self._table is None:
            import pyarrow as pa

            columns = {}
            for name, col in zip(self.body["metadata"]["feature_names"], self.body["results"]):
                columns[name] = col["values"]
                columns[name + "__status"] = col["statuses"]
                columns[name + "__event_timestamp"] = col["event_timestamps"]
            self._table = pa.table(columns)
        return self._table

    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        out = {}
        for name, col in zip(self.body["metadata"]["feature_names"], self.body["results"]):
            out[name] = col["values"]
            if include_event_timestamps:
                out[name + "__ts"] = col.get("event_timestamps")
        return out

    def to_df(self, include_event_timestamps: bool = False):
        import pandas as pd

        return pd.DataFrame(self.to_dict(include_event_timestamps))


class RetrievalJob:
    """The result of ``get_historical_features``: ``to_df()`` and ``to_arrow()``."""

    def __init__(self, store: "FeatureStore", entity, refs, service, full_feature_names):
        self._store = store
        self._entity = entity
        self._refs = refs
        self._service = service
        self._full = full_feature_names
        self._table = None

    def _fetch(self):
        if self._table is None:
            self._table = self._store._historical(self._entity, self._refs, self._service, self._full)
        return self._table

    def to_df(self):
        """The training set as a pandas DataFrame (on-demand features included)."""
        return self._fetch().to_pandas()

    def to_arrow(self):
        """The training set as a pyarrow Table."""
        return self._fetch()


_UDFS: Dict[str, Any] = {}


def _load_udf(odfv):
    """The transformation function of an on-demand view, from its registered source text
    (decorators stripped), compiled once per source."""
    import ast

    key = odfv.name + "\0" + odfv.udf_body
    if key not in _UDFS:
        import numpy as np
        import pandas as pd

        tree = ast.parse(odfv.udf_body)
        fns = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == odfv.udf_name]
        if not fns:
            raise ValueError(f"on-demand view {odfv.name}: function {odfv.udf_name!r} not found in its source")
        fns[0].decorator_list = []
        namespace: Dict[str, Any] = {"pd": pd, "pandas": pd, "np": np, "numpy": np}
        exec(compile(ast.Module(body=[fns[0]], type_ignores=[]), f"<on-demand view {odfv.name}>", "exec"), namespace)
        _UDFS[key] = namespace[odfv.udf_name]
    return _UDFS[key]


class FeatureStore:
    """A client of a Larder server, with Feast's ``FeatureStore`` methods.

    The server is ``url``, else ``$LARDER_URL``; with neither, ``FeatureStore(repo_path=DIR)``
    runs in local mode (a ``larder serve`` for the repo, started in the background or reused:
    see ``larder.local_server``), and ``FeatureStore()`` talks to ``http://127.0.0.1:6566``.
    Training sets travel as Arrow: over Arrow Flight when ``flight_url`` (or
    ``$LARDER_FLIGHT_URL``, e.g. ``grpc://127.0.0.1:8815``) is given, else as an Arrow IPC
    stream over HTTP.
    """

    def __init__(self, repo_path: Optional[Union[str, Path]] = None, url: Optional[str] = None, timeout: float = 600,
                 flight_url: Optional[str] = None, token: Optional[str] = None,
                 tls_root_certs: Optional[Union[str, Path]] = None):
        from .http import Session

        self.repo_path = Path(repo_path) if repo_path else None
        self.local = self.repo_path is not None and not (url or os.environ.get("LARDER_URL"))
        if self.local:
            from .local_server import ensure

            url, _flight = ensure(self.repo_path)
        self.url = (url or os.environ.get("LARDER_URL") or DEFAULT_URL).rstrip("/")
        self.flight_url = flight_url or os.environ.get("LARDER_FLIGHT_URL") or None
        self.timeout = timeout
        self._token = token or os.environ.get("LARDER_TOKEN") or None
        self._session = Session()
        # A private CA for an https:// server (else the system's trust store).
        self._ca = tls_root_certs or os.environ.get("LARDER_CA_BUNDLE") or None
        if self._ca:
            self._session.verify = str(self._ca)
            # Otherwise REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment would win over it.
            self._session.trust_env = False
        if self._token:
            self._session.headers["Authorization"] = f"Bearer {self._token}"

    def stop_local_server(self) -> bool:
        """Stops the local-mode server of this store's repo (see ``larder.local_server``)."""
        if not self.local:
            return False
        from .local_server import stop

        return stop(self.repo_path)

    # -- registry ------------------------------------------------------------------------
    def _registry(self) -> dict:
        resp = self._session.get(self.url + "/registry", timeout=self.timeout)
        if resp.status_code != 200:
            raise LarderError(resp.status_code, _error_message(resp))
        return resp.json()

    @property
    def project(self) -> str:
        return self._registry()["project"]

    def _objects(self, kind: str):
        return [_ns(o) for o in self._registry()["doc"][kind]]

    def _one(self, kind: str, name: str, label: str):
        for o in self._objects(kind):
            if o.name == name:
                return o
        raise LarderError(404, f"{label} {name} does not exist")

    def list_entities(self):
        return self._objects("entities")

    def get_entity(self, name: str):
        return self._one("entities", name, "Entity")

    def list_feature_views(self):
        return self._objects("feature_views")

    def get_feature_view(self, name: str):
        return self._one("feature_views", name, "Feature view")

    def list_on_demand_feature_views(self):
        return self._objects("on_demand_feature_views")

    def get_on_demand_feature_view(self, name: str):
        return self._one("on_demand_feature_views", name, "On demand feature view")

    def list_feature_services(self):
        return self._objects("feature_services")

    def get_feature_service(self, name: str):
        return self._one("feature_services", name, "Feature service")

    def list_data_sources(self):
        return self._objects("data_sources")

    def get_data_source(self, name: str):
        return self._one("data_sources", name, "Data source")

    def list_stream_feature_views(self):
        """The views a stream worker feeds: those on a Kafka source (Larder lists them with the
        feature views too)."""
        doc = self._registry()["doc"]
        kafka = {s["name"] for s in doc["data_sources"] if s.get("type") == "kafka"}
        return [_ns(v) for v in doc["feature_views"] if v["source"] in kafka]

    def get_stream_feature_view(self, name: str):
        for v in self.list_stream_feature_views():
            if v.name == name:
                return v
        raise LarderError(404, f"Stream feature view {name} does not exist")

    def refresh_registry(self) -> None:
        """Feast's cache refresh; a no-op here: every call reads the server's current registry."""

    # -- writes ----------------------------------------------------------------------------
    def _post(self, path: str, body: Optional[dict] = None):
        resp = self._session.post(self.url + path, json=body if body is not None else {}, timeout=self.timeout)
        if resp.status_code not in (200, 202):
            raise LarderError(resp.status_code, _error_message(resp))
        return resp.json() if resp.content else None

    def wait_for_job(self, job_id: str, timeout: Optional[float] = None, poll: float = 0.2) -> dict:
        """Waits for a server job (a materialization) to finish and returns its report; raises
        ``LarderError`` (with the job's status code and message) when it failed, and
        ``TimeoutError`` when ``timeout`` seconds pass first."""
        import time as _time_mod

        deadline = None if timeout is None else _time_mod.monotonic() + timeout
        while True:
            resp = self._session.get(f"{self.url}/jobs/{job_id}", timeout=self.timeout)
            if resp.status_code != 200:
                raise LarderError(resp.status_code, _error_message(resp))
            report = resp.json()
            if report["status"] == "succeeded":
                return report
            if report["status"] == "failed":
                err = report.get("error") or {}
                raise LarderError(err.get("status", 500), err.get("message", "the job failed"))
            if deadline is not None and _time_mod.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still running after {timeout} s")
            _time_mod.sleep(poll)

    def _run_job(self, path: str, body: dict, wait: bool):
        # `async=true`: the server answers at once with the job; it is followed here.
        started = self._post(path + "?async=true", body)
        if not wait:
            return started
        return self.wait_for_job(started["id"])["views"]

    def push(self, push_source_name: str, df, allow_registry_cache: bool = True, to: PushMode = PushMode.ONLINE,
             transform_on_write: bool = True) -> None:
        """Feast's ``push``: writes ``df`` (pandas, pyarrow or a dict of columns) to the views fed
        by the push source (``ONLINE``), appends it to the source's offline data (``OFFLINE``), or
        both. Every row is validated before anything is written."""
        mode = to.value if isinstance(to, PushMode) else str(to)
        self._post("/push", {"push_source_name": push_source_name, "df": _columns(df), "to": mode,
                             "allow_registry_cache": allow_registry_cache, "transform_on_write": transform_on_write})

    def write_to_online_store(self, feature_view_name: str, df=None, inputs=None, allow_registry_cache: bool = True,
                              transform_on_write: bool = True) -> None:
        """Feast's ``write_to_online_store``: writes rows of one view (newest event time wins)."""
        data = df if df is not None else inputs
        self._post("/write-to-online-store", {"feature_view_name": feature_view_name, "df": _columns(data),
                                              "allow_registry_cache": allow_registry_cache})

    def materialize(self, start_date, end_date, feature_views: Optional[List[str]] = None, wait: bool = True):
        """Loads ``[start_date, end_date]`` from the offline sources into the online store (a job
        run by the server). Waits for it and returns one ``{feature_view, start, end, rows}`` per
        view; with ``wait=False`` returns the started job's report (see ``wait_for_job``)."""
        return self._run_job("/materialize", {"start_ts": _time(start_date), "end_ts": _time(end_date),
                                              "feature_views": feature_views}, wait)

    def materialize_incremental(self, end_date, feature_views: Optional[List[str]] = None, wait: bool = True):
        """Materializes each view from the end of its last run up to ``end_date`` (a job, as
        ``materialize``)."""
        return self._run_job("/materialize-incremental", {"end_ts": _time(end_date), "feature_views": feature_views},
                             wait)

    @staticmethod
    def _definitions(objects) -> dict:
        from larder.repo import export_objects

        if not isinstance(objects, (list, tuple)):
            objects = [objects]
        return export_objects(list(objects))

    def apply(self, objects, objects_to_delete: Optional[List[Any]] = None, partial: bool = True) -> dict:
        """Feast's ``apply``: registers (or updates) ``objects`` as a new registry version, keeping
        the others (``partial=True``) and removing ``objects_to_delete``. Returns
        ``{changes, version}``."""
        body: Dict[str, Any] = {"definitions": self._definitions(objects), "partial": partial,
                                "applied_by": os.environ.get("USER") or "sdk"}
        if objects_to_delete:
            doc = self._definitions(objects_to_delete)
            body["delete"] = {k: [d["name"] for d in v] for k, v in doc.items() if isinstance(v, list) and v}
            # Referenced objects come along in the export; delete only what was named.
            named = {getattr(o, "name", None) for o in objects_to_delete}
            body["delete"] = {k: [n for n in v if n in named] for k, v in body["delete"].items()}
            body["delete"] = {k: v for k, v in body["delete"].items() if v}
        return self._post("/apply", body)

    def plan(self, objects, partial: bool = True) -> List[str]:
        """What ``apply(objects)`` would change (plan lines), without changing anything."""
        return self._post("/plan", {"definitions": self._definitions(objects), "partial": partial})["changes"]

    def teardown(self) -> None:
        """Deletes every view's online data and the registry."""
        self._post("/teardown")

    # -- online ----------------------------------------------------------------------------
    def get_online_features(self, features, entity_rows: Sequence[Dict[str, Any]], full_feature_names: bool = False) -> OnlineResponse:
        entities: Dict[str, List[Any]] = {}
        for i, row in enumerate(entity_rows):
            for k, v in row.items():
                entities.setdefault(k, [None] * i).append(v)
        body: Dict[str, Any] = {"entities": entities, "full_feature_names": full_feature_names}
        if isinstance(features, (list, tuple)):
            body["features"] = list(features)
        else:
            body["feature_service"] = features.name
        headers = {}
        if len(entity_rows) >= ARROW_ONLINE_ROWS and _has_pyarrow():
            headers["Accept"] = ARROW_STREAM
        resp = self._session.post(self.url + "/get-online-features", json=body, timeout=self.timeout, headers=headers)
        if resp.status_code != 200:
            raise LarderError(resp.status_code, _error_message(resp))
        if resp.headers.get("content-type", "").startswith(ARROW_STREAM):
            import pyarrow as pa
            import pyarrow.ipc as ipc

            return OnlineResponse._from_arrow(ipc.open_stream(pa.py_buffer(resp.content)).read_all())
        return OnlineResponse(resp.json())

    # -- offline ---------------------------------------------------------------------------
    def get_historical_features(self, entity_df=None, features=None, full_feature_names: bool = False) -> RetrievalJob:
        """Point-in-time-correct training set for the rows of ``entity_df``: a pandas DataFrame, a
        pyarrow Table, or an SQL string over the registered file sources (tables are named after
        the sources)."""
        if entity_df is None or features is None:
            raise ValueError("entity_df and features are required")
        # On-demand views are computed by the server (SQL in-process, pandas/python UDFs in its
        # Python worker), with the same code as online serving.
        if isinstance(features, (list, tuple)):
            return RetrievalJob(self, entity_df, list(features), None, full_feature_names)
        return RetrievalJob(self, entity_df, [], features.name, full_feature_names)

    def _historical(self, entity_df, refs, service, full):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        params = {"features": refs, "feature_service": service, "full_feature_names": full}
        if isinstance(entity_df, str):
            # SQL over the registered file sources (tables named after the sources), run by the server.
            params["entity_df_sql"] = entity_df
            table = pa.table({"key": ["sql"]})
        else:
            table = entity_df if isinstance(entity_df, pa.Table) else pa.Table.from_pandas(entity_df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta.pop(b"pandas", None)
        meta[b"larder.request"] = json.dumps(params).encode()
        table = table.replace_schema_metadata(meta)
        if self.flight_url:
            return self._historical_flight(table, params)
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        resp = self._session.post(self.url + "/get-historical-features", data=sink.getvalue().to_pybytes(),
                                  headers={"Content-Type": ARROW_STREAM}, timeout=self.timeout)
        if resp.status_code != 200:
            raise LarderError(resp.status_code, _error_message(resp))
        return ipc.open_stream(resp.content).read_all()

    def _historical_flight(self, table, params):
        import pyarrow as pa
        import pyarrow.flight as fl

        kwargs = {"tls_root_certs": Path(self._ca).read_bytes()} if self._ca else {}
        client = fl.FlightClient(self.flight_url, **kwargs)
        descriptor = fl.FlightDescriptor.for_command(json.dumps(params).encode())
        try:
            headers = [(b"authorization", f"Bearer {self._token}".encode())] if self._token else []
            writer, reader = client.do_exchange(descriptor, options=fl.FlightCallOptions(headers=headers))
            with writer:
                writer.begin(table.schema)
                writer.write_table(table)
                writer.done_writing()
                return reader.read_all()
        except (fl.FlightError, pa.ArrowException) as e:
            text = str(e)
            status = {fl.FlightUnavailableError: 503, fl.FlightUnauthenticatedError: 401,
                      fl.FlightUnauthorizedError: 403}.get(type(e), 500)
            # The gRPC code, as pyarrow words it ("Flight returned <code> error"); the message
            # itself may contain any words (e.g. a file name that was "not found").
            code = text.lower().split(", with message", 1)[0]
            if "returned not found" in code:
                status = 404
            elif "returned invalid argument" in code:
                status = 422
            start, end = text.find("{"), text.rfind("}")
            message = text
            if start >= 0 and end > start:
                try:
                    message = json.loads(text[start:end + 1]).get("message", text)
                except ValueError:
                    pass
            raise LarderError(status, message) from e
        finally:
            client.close()
