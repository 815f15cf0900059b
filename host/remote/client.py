"""HTTP to an inference server: JSON calls and Server-Sent-Event streams, with errors mapped.

Built on httpx (connection pooling, timeouts, streaming responses) and
httpx-sse (the SSE wire format).  One :class:`ServerClient` is shared by the
worker thread and the per-request reader threads (httpx's Client is
thread-safe); nothing here ever runs on the frame thread.

Every failure becomes a RelicError a mod can read as ``error_type``:

- the server cannot be reached, stops sending for ``stall_s`` or drops the
  connection -> :class:`BackendDownError` (``"backend_down"``);
- HTTP 401/403 -> :class:`BackendError` naming the API key;
- HTTP 400 that says the prompt does not fit -> :class:`PromptTooLongError`;
  a grammar the server's parser refused -> :class:`GrammarError`;
- any other HTTP error -> :class:`BackendError` with the server's message.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import httpx
from httpx_sse import SSEError, connect_sse

from host.errors import BackendDownError, BackendError, GrammarError, PromptTooLongError

DEFAULT_CONNECT_S = 3.0
DEFAULT_STALL_S = 30.0  # a stream that sends nothing for this long counts as a dead server


def server_message(body: str) -> str:
    """The human part of a server's error body (OpenAI's and llama-server's ``{"error": {...}}``)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)[:300]
    return str(err)[:300]


def error_for_status(status: int, body: str, url: str) -> Exception:
    """The RelicError for an HTTP error answer."""
    msg = server_message(body)
    low = msg.lower()
    if status in (401, 403):
        return BackendError(f"the server at {url} refused the API key (HTTP {status}: {msg}); check the key "
                            "in the environment variable the configuration names")
    if status == 404:
        return BackendError(f"the server at {url} has no such endpoint (HTTP 404: {msg}); is the URL right, "
                            "and is it the kind of server the configuration says?")
    if "context" in low and ("exceed" in low or "too long" in low or "larger than" in low):
        return PromptTooLongError(f"the prompt does not fit the server's context: {msg}")
    if "grammar" in low and status == 400:
        return GrammarError(f"the server refused the grammar: {msg}")
    if status == 503:
        return BackendDownError(f"the server at {url} is not ready (HTTP 503: {msg})")
    return BackendError(f"the server at {url} answered HTTP {status}: {msg}")


class StreamAbort:
    """Ends one stream from another thread: its socket is shut down, so a reader blocked on it wakes at
    once and the server sees the connection close, even before the server has answered at all (a request
    it has queued behind busy slots).  Give one to :meth:`ServerClient.stream`; ``abort()`` is idempotent
    and may come before the connection exists (it is then shut as soon as it does)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.aborted = False

    def attach(self, sock) -> None:
        """The stream's socket, once connected (from the reader thread)."""
        with self._lock:
            self._sock = sock
            if self.aborted:
                self._shut()

    def abort(self) -> None:
        """Shut the stream's socket down (any thread)."""
        with self._lock:
            self.aborted = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def trace(self, event: str, info: dict) -> None:
        """httpx's ``trace`` request extension: catches the new connection's socket."""
        if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            self.attach(info["return_value"].get_extra_info("socket"))


class ServerClient:
    """A pooled HTTP client for one server (base ``url``), optionally with a bearer ``api_key``.

    ``connect_s`` bounds connecting; ``stall_s`` bounds each read (a stream
    that sends nothing that long fails as backend_down).
    """

    def __init__(self, url: str, *, api_key: str | None = None, connect_s: float = DEFAULT_CONNECT_S,
                 stall_s: float = DEFAULT_STALL_S, max_connections: int = 64):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # the pool is shared by the worker thread and the reader threads (httpx.Client is thread-safe)
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(stall_s, connect=connect_s),
                                  limits=httpx.Limits(max_connections=max_connections,
                                                      max_keepalive_connections=max_connections))
        # streams get a connection each (no keep-alive): its socket is known, so a StreamAbort can shut it
        self._streams = httpx.Client(base_url=self.url, headers=headers,
                                     timeout=httpx.Timeout(stall_s, connect=connect_s),
                                     limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0))

    def _down(self, exc: Exception) -> BackendDownError:
        if isinstance(exc, httpx.TimeoutException):
            return BackendDownError(f"the server at {self.url} did not answer in time ({type(exc).__name__})")
        return BackendDownError(f"the server at {self.url} cannot be reached or dropped the connection "
                                f"({type(exc).__name__}: {exc})")

    def request_json(self, method: str, path: str, body=None, *, timeout: float | None = None,
                     abort: StreamAbort | None = None):
        """One JSON call; the decoded answer, or a RelicError (see the module docstring).  With ``abort``
        (a :class:`StreamAbort`) the call has a connection of its own that another thread can shut."""
        try:
            kwargs = {"json": body} if body is not None else {}
            if timeout is not None:
                kwargs["timeout"] = timeout
            if abort is not None:
                resp = self._streams.request(method, path, extensions={"trace": abort.trace}, **kwargs)
            else:
                resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._down(exc) from None
        if resp.status_code >= 400:
            raise error_for_status(resp.status_code, resp.text, self.url)
        try:
            return resp.json()
        except ValueError:
            raise BackendError(f"the server at {self.url} answered {path} with something that is not JSON: "
                               f"{resp.text[:120]!r}") from None

    def get_json(self, path: str, *, timeout: float | None = None):
        """GET ``path`` as JSON."""
        return self.request_json("GET", path, timeout=timeout)

    def post_json(self, path: str, body, *, timeout: float | None = None, abort: StreamAbort | None = None):
        """POST a JSON body to ``path``; its JSON answer."""
        return self.request_json("POST", path, body, timeout=timeout, abort=abort)

    @contextmanager
    def stream(self, path: str, body, abort: StreamAbort | None = None) -> Iterator[Iterator[dict]]:
        """POST ``body`` and iterate the decoded ``data:`` objects of the SSE answer.

        ``with client.stream(path, body) as events: for data in events: ...``.
        Leaving the block closes the connection, which is how a cancel tells
        the server to stop generating; ``abort`` (a :class:`StreamAbort`) does
        the same from another thread at any moment.  The stream ends at
        ``data: [DONE]`` or when the server closes it after its last event.
        """
        extensions = {"trace": abort.trace} if abort is not None else None
        try:
            with connect_sse(self._streams, "POST", path, json=body, extensions=extensions) as source:
                resp = source.response
                if resp.status_code >= 400:
                    resp.read()
                    raise error_for_status(resp.status_code, resp.text, self.url)
                yield self._events(source)
        except httpx.HTTPError as exc:
            raise self._down(exc) from None

    def _events(self, source) -> Iterator[dict]:
        try:
            for sse in source.iter_sse():
                if not sse.data or sse.data == "[DONE]":
                    if sse.data == "[DONE]":
                        return
                    continue
                try:
                    data = json.loads(sse.data)
                except ValueError:
                    raise BackendError(f"the server at {self.url} sent an event that is not JSON: "
                                       f"{sse.data[:120]!r}") from None
                if isinstance(data, dict) and "error" in data and not data.get("choices"):
                    raise error_for_status(int(data["error"].get("code", 500))
                                           if isinstance(data["error"], dict) else 500, sse.data, self.url)
                yield data
        except SSEError as exc:
            # a JSON error answer to a stream request (no text/event-stream content type)
            resp = source.response
            resp.read()
            if resp.status_code >= 400:
                raise error_for_status(resp.status_code, resp.text, self.url) from None
            raise BackendError(f"the server at {self.url} did not stream: {exc}") from None
        except httpx.HTTPError as exc:
            raise self._down(exc) from None

    def close(self) -> None:
        """Close the connection pools (open streams fail in their reader threads)."""
        self._http.close()
        self._streams.close()
