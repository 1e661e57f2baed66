"""Shared fixtures: the real `larder` binary, feature repos made by the tests, and a running
`larder serve` on a free loopback port."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


# Test groups (pytest markers, declared in pytest.ini): by directory, then by file.
_GROUP_OF_DIR = {"compat": "feast", "ui": "browser"}
_GROUP_OF_FILE = {
    "test_stream.py": "kafka",
    "test_fraud_example.py": "kafka",
    "test_stream_scale_out.py": "kafka",
    "test_redis.py": "services",
    "test_sql_registry.py": "services",
    "test_s3.py": "services",
}


def pytest_collection_modifyitems(items):
    """Marks every test with its group (fast, services, kafka, browser, feast)."""
    for item in items:
        path = Path(str(item.fspath))
        group = _GROUP_OF_FILE.get(path.name) or _GROUP_OF_DIR.get(path.parent.name) or "fast"
        item.add_marker(getattr(pytest.mark, group))


def larder_bin() -> str:
    b = os.environ.get("LARDER_BIN") or str(Path.home() / ".cache/larder/target/debug/larder")
    if not Path(b).exists():
        pytest.fail(f"larder binary not found at {b}: build it (scripts/test.sh does) or set LARDER_BIN")
    return b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real `redis-server` on a free loopback port (in memory only)."""

    def __init__(self, tmp: Path, port: int | None = None):
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is not installed: scripts/test.sh installs Debian's redis-server")
        self.tmp = tmp
        self.port = port or free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *args) -> str:
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True, text=True)
        return p.stdout.strip()

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


class PostgresServer:
    """A real PostgreSQL server made with initdb in a temp dir, on a free loopback port.
    As root it runs as the `postgres` user (PostgreSQL refuses to run as root)."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            pytest.fail("PostgreSQL's server is not installed: scripts/test.sh installs Debian's postgresql")
        self.bindir = bins[-1].parent
        self.port = free_port()
        # Its own directory: pytest's temp dirs are private to root, the server runs as postgres.
        tmp = self.tmp = Path(tempfile.mkdtemp(prefix="larder-pg-"))
        self.dir = tmp / "pgdata"
        self.sock = tmp / "pgsock"
        self.sock.mkdir(parents=True, exist_ok=True)
        self.prefix = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            for p in [tmp, self.sock]:
                shutil.chown(p, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "larder", "--no-sync")
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(tmp / "pg.log"), "-w", "-t", "30", "start",
                  "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "larder", "registry")
        self.url = f"postgresql://larder@127.0.0.1:{self.port}/registry"

    def _run(self, tool, *args):
        p = subprocess.run([*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError(f"{tool} failed: {p.stdout}\n{p.stderr}")
        return p

    def stop(self):
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Larder:
    """Runs `larder` commands on one repo."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.env = dict(os.environ, LARDER_PYTHON=os.environ.get("LARDER_PYTHON", sys.executable))

    def run(self, *args, check=True) -> subprocess.CompletedProcess:
        p = subprocess.run([larder_bin(), "-c", str(self.repo), *args], capture_output=True, text=True, env=self.env, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"larder {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p


class Server:
    """A `larder serve` process. Its output goes to a file (`log`, else a temporary one), never
    to a pipe nobody drains (a chatty server would block on a full pipe); `output()` reads it."""

    def __init__(self, larder: Larder, *extra, log: Path | None = None):
        if log is None:
            fd, name = tempfile.mkstemp(prefix="larder-serve-", suffix=".log")
            os.close(fd)
            log = Path(name)
        self.log = log
        self.port = free_port()
        self.flight_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flight_url = f"grpc://127.0.0.1:{self.flight_port}"
        self.proc = subprocess.Popen(
            [larder_bin(), "-c", str(larder.repo), "serve", "--port", str(self.port), "--flight-port", str(self.flight_port), *extra],
            stdout=open(log, "a"),
            stderr=subprocess.STDOUT,
            text=True,
            env=larder.env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                out = log.read_text()
                raise AssertionError(f"larder serve exited: {out}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code in (200, 503):
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("larder serve did not start")

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace")

    def post(self, path, body=None, data=None, **kw):
        if data is None:
            data = json.dumps(body)
        return requests.post(self.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=30, **kw)

    def online(self, body):
        return self.post("/get-online-features", body)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
