"""The SDK resends a request once when the server closed a pooled keep-alive connection without
answering (what hyper does to connections idle past its header read timeout), and does not hide
other connection errors."""

import socket
import threading

import pytest
import requests

from larder.http import Session

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}"


def _read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        body += conn.recv(65536)
    return head


class FlakyServer:
    """Answers the first request of each connection, then closes the connection when the second
    request arrives, without answering it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests_seen = 0
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if _read_request(conn) is None:
                    continue
                self.requests_seen += 1
                conn.sendall(OK)
                if _read_request(conn) is not None:
                    self.requests_seen += 1  # seen, never answered: the connection just closes

    def close(self):
        self.sock.close()


@pytest.fixture
def flaky():
    s = FlakyServer()
    yield s
    s.close()


def test_post_is_resent_once_on_a_connection_closed_without_answer(flaky):
    session = Session()
    url = f"http://127.0.0.1:{flaky.port}/get-online-features"
    assert session.post(url, json={"n": 1}).json() == {"ok": True}
    # The second request goes out on the pooled connection, which the server drops unanswered.
    assert session.post(url, json={"n": 2}).json() == {"ok": True}
    assert flaky.requests_seen == 3 and flaky.connections == 2


def test_plain_requests_session_fails_in_the_same_situation(flaky):
    # The situation above is real: without the resend, the caller sees the error.
    session = requests.Session()
    url = f"http://127.0.0.1:{flaky.port}/get-online-features"
    session.post(url, json={"n": 1})
    with pytest.raises(requests.ConnectionError):
        session.post(url, json={"n": 2})


def test_refused_connection_is_not_retried():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(requests.ConnectionError):
        Session().post(f"http://127.0.0.1:{port}/push", json={})
