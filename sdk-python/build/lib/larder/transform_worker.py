"""The Python transformation worker that ``larder serve`` starts for on-demand views in
``pandas`` and ``python`` mode (Feast's UDFs).

    python -m larder.transform_worker --socket PATH

Frames on the Unix socket: ``u32le`` header length, JSON header, ``u64le`` body length, Arrow
IPC stream. A request's header carries the view (``name``, ``mode``, ``udf_name``,
``udf_body``, ``features``) and a request ``id``, and its body the input columns; the answer's
header is ``{"ok": true, "id": ...}`` (body: the outputs) or ``{"error": "...", "id": ...}``. Each function is compiled once from
its source text, as the SDK does for training sets, so online and offline run the same code.
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import traceback
import types

import pyarrow as pa

from larder.feature_store import _load_udf


def _read_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf.extend(chunk)
    return bytes(buf)


def _send(conn, header: dict, body: bytes = b""):
    h = json.dumps(header).encode()
    conn.sendall(struct.pack("<I", len(h)) + h + struct.pack("<Q", len(body)) + body)


def transform(header: dict, table: pa.Table) -> pa.Table:
    import pandas as pd

    view = types.SimpleNamespace(name=header["name"], udf_name=header["udf_name"], udf_body=header["udf_body"],
                                 mode=header["mode"])
    fn = _load_udf(view)
    features = header["features"]
    if header["mode"] == "python":
        out = fn(table.to_pydict())
        return pa.table({f: list(out[f]) for f in features})
    out = fn(table.to_pandas())
    if not isinstance(out, pd.DataFrame):
        raise TypeError(f"a pandas-mode transformation must return a DataFrame, got {type(out).__name__}")
    return pa.Table.from_pandas(out[features].reset_index(drop=True), preserve_index=False)


def serve_connection(conn):
    with conn:
        while True:
            try:
                hlen = struct.unpack("<I", _read_exact(conn, 4))[0]
                header = json.loads(_read_exact(conn, hlen))
                blen = struct.unpack("<Q", _read_exact(conn, 8))[0]
                body = _read_exact(conn, blen)
            except EOFError:
                return
            try:
                table = pa.ipc.open_stream(body).read_all()
                out = transform(header, table)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, out.schema) as w:
                    w.write_table(out)
                _send(conn, {"ok": True, "id": header.get("id")}, sink.getvalue().to_pybytes())
            except Exception as e:  # the UDF's error goes back to the caller, the worker lives on
                traceback.print_exc(file=sys.stderr)
                _send(conn, {"error": f"{type(e).__name__}: {e}", "id": header.get("id")})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    args = ap.parse_args(argv)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(16)
    # Exit with the server, even when it is killed without a chance to stop us.
    parent = os.getppid()

    def watch_parent():
        import time

        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
