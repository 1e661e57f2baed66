"""The SDK's HTTP session.

``larder serve`` (hyper) closes a keep-alive connection that stays idle longer than its header
read timeout (30 s). A client that picks that pooled connection at the moment the server closes
it sees "Remote end closed connection without response" although the server never saw the
request. ``requests`` does not resend a POST in that case; this session resends once, on a fresh
connection. That is safe for every Larder route: reads have no effect, and writes (push,
write-to-online-store, materialize, apply) are idempotent (newest-wins rows, re-runnable
materialization, versioned registry).
"""

import http.client

import requests

# Errors that mean "the server closed the connection before answering".
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _stale_connection(err: requests.ConnectionError) -> bool:
    seen = set()
    e = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, _STALE):
            return True
        nested = [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        e = nested[0] if nested else (e.__cause__ or e.__context__)
    return False


class Session(requests.Session):
    """A ``requests.Session`` that resends a request once when a pooled connection turned out to
    be closed by the server before it answered."""

    def request(self, method, url, *args, **kwargs):
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.ConnectionError as e:
            if not _stale_connection(e):
                raise
            return super().request(method, url, *args, **kwargs)
