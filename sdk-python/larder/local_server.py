"""Local mode: ``FeatureStore(repo_path=".")`` with no server URL runs a ``larder serve`` for the
repo in the background and talks to it, as Feast's ``FeatureStore`` works in-process.

How the server is found, reused and stopped:

- Its address is kept in ``<repo>/.larder/server.json`` (pid, HTTP and Flight URLs, the binary).
  A later ``FeatureStore(repo_path=...)`` — in the same script, another notebook, another
  process — reuses that server while its process lives and answers ``/health``; otherwise it
  starts a new one on free loopback ports. A lock file (``.larder/server.lock``) makes
  concurrent starters agree on one server.
- The binary is ``$LARDER_BIN``, else ``larder`` on ``PATH``. The server's log is
  ``<repo>/.larder/server.log``.
- A repo whose ``online_store`` is Feast's ``{type: remote, path: URL}`` is the client of the
  feature server at ``URL``: local mode talks to that server and starts nothing.
- The server outlives the Python process that started it (so the next script starts fast).
  Stop it with ``FeatureStore.stop_local_server()``, ``python -m larder.local_server stop
  REPO``, or by killing the pid in ``server.json``. ``LARDER_URL`` (or ``url=``) turns local
  mode off.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

STATE_DIR = ".larder"
START_TIMEOUT = 60.0


class LocalServerError(RuntimeError):
    """The local server cannot be started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie (exited, not yet reaped) child is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(url + "/health", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def binary() -> str:
    """The ``larder`` binary local mode runs."""
    b = os.environ.get("LARDER_BIN") or shutil.which("larder")
    if not b or not Path(b).exists():
        raise LocalServerError(
            "local mode needs the `larder` binary: put it on PATH or set LARDER_BIN "
            "(or give FeatureStore(url=...) / $LARDER_URL for a running server)")
    return b


def _state_file(repo: Path) -> Path:
    return repo / STATE_DIR / "server.json"


def _read_state(repo: Path) -> Optional[dict]:
    try:
        return json.loads(_state_file(repo).read_text())
    except (OSError, ValueError):
        return None


def running(repo: Path) -> Optional[dict]:
    """The repo's local server, if one is running and answering."""
    st = _read_state(repo)
    if st and _alive(int(st.get("pid", 0))) and _healthy(st["url"]):
        return st
    return None


def remote_server(repo: Path) -> Optional[str]:
    """The URL of the feature server a repo with Feast's remote online store
    (``online_store: {type: remote, path: URL}``) is the client of, else None."""
    import yaml

    try:
        config = yaml.safe_load((repo / "feature_store.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # `larder serve` reports what is wrong with the file
    online = config.get("online_store") if isinstance(config, dict) else None
    if isinstance(online, dict) and online.get("type") == "remote" and online.get("path"):
        return str(online["path"]).rstrip("/")
    return None


def ensure(repo_path) -> Tuple[str, Optional[str]]:
    """The ``(http_url, flight_url)`` of the repo's local server, started if needed (for a repo
    with a remote online store: that server's URL, and no Flight URL)."""
    import fcntl

    repo = Path(repo_path).resolve()
    if not (repo / "feature_store.yaml").exists():
        raise LocalServerError(f"{repo} has no feature_store.yaml")
    remote = remote_server(repo)
    if remote:
        return remote, None
    d = repo / STATE_DIR
    d.mkdir(exist_ok=True)
    with open(d / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        st = running(repo)
        if st:
            return st["url"], st["flight_url"]
        port, flight_port = _free_port(), _free_port()
        exe = binary()
        log = open(d / "server.log", "ab")
        proc = subprocess.Popen(
            [exe, "-c", str(repo), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--flight-port", str(flight_port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ, LARDER_PYTHON=os.environ.get("LARDER_PYTHON", sys.executable)),
        )
        url, flight_url = f"http://127.0.0.1:{port}", f"grpc://127.0.0.1:{flight_port}"
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = (d / "server.log").read_text(errors="replace")[-2000:]
                raise LocalServerError(f"`larder serve` for {repo} exited ({proc.returncode}):\n{tail}")
            if _healthy(url):
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise LocalServerError(f"`larder serve` for {repo} did not answer within {START_TIMEOUT:.0f} s")
        state = {"pid": proc.pid, "url": url, "flight_url": flight_url, "binary": exe, "started_at": time.time()}
        tmp = d / "server.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(_state_file(repo))
        return url, flight_url


def stop(repo_path, timeout: float = 15.0) -> bool:
    """Stops the repo's local server (SIGTERM: requests in flight finish). Returns whether one
    was running."""
    repo = Path(repo_path).resolve()
    st = _read_state(repo)
    if not st or not _alive(int(st.get("pid", 0))):
        _state_file(repo).unlink(missing_ok=True)
        return False
    pid = int(st["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _state_file(repo).unlink(missing_ok=True)
    return True


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m larder.local_server", description="Local-mode servers.")
    p.add_argument("command", choices=["start", "stop", "status"])
    p.add_argument("repo", nargs="?", default=".")
    a = p.parse_args(argv)
    if a.command == "start":
        print(ensure(a.repo)[0])
    elif a.command == "stop":
        print("stopped" if stop(a.repo) else "not running")
    else:
        st = running(Path(a.repo).resolve())
        print(st["url"] if st else "not running")
        return 0 if st else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
