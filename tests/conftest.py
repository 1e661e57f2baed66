"""Shared fixtures: the real `larder` binary, feature repos made by the tests, and a running
`larder serve` on a free loopback port."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def larder_bin() -> str:
    b = os.environ.get("LARDER_BIN") or str(Path.home() / ".cache/larder/target/debug/larder")
    if not Path(b).exists():
        pytest.fail(f"larder binary not found at {b}: build it (scripts/test.sh does) or set LARDER_BIN")
    return b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """A `larder serve` process."""

    def __init__(self, larder: Larder, *extra):
        self.port = free_port()
        self.flight_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flight_url = f"grpc://127.0.0.1:{self.flight_port}"
        self.proc = subprocess.Popen(
            [larder_bin(), "-c", str(larder.repo), "serve", "--port", str(self.port), "--flight-port", str(self.flight_port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=larder.env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"larder serve exited: {self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code in (200, 503):
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("larder serve did not start")

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
