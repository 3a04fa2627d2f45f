"""Real peers on loopback for notification tests: an HTTP receiver and an SMTP sink.

``HttpReceiver`` is a ``ThreadingHTTPServer`` in a background thread that records every request
and answers with a scripted status::

    with HttpReceiver() as rx:                  # or rx = HttpReceiver().start(); ...; rx.stop()
        rx.respond_with(200)                    # default answer (initially 200, empty body)
        rx.enqueue(500, body=b"boom")           # one-off answers, used first, in order
        rx.enqueue(200, delay=2.0)              # sleep 2 s before answering (timeouts)
        ... POST to rx.url + "/hook" ...
        req = rx.wait_for_requests(1)[0]        # blocks until 1 request arrived (or TimeoutError)
        req.path, req.headers["x-vigie-delivery-id"], req.body, req.received_at, req.json()

``SmtpSink`` is an aiosmtpd ``Controller`` that keeps every accepted message::

    with SmtpSink() as smtp:                    # SmtpSink(tls_context=..., auth=("u", "p"))
        ... send to 127.0.0.1:smtp.port ...
        mail = smtp.wait_for_messages(1)[0]
        mail.mail_from, mail.rcpt_tos, mail.message["Subject"], mail.message.get_content()
        smtp.reject_recipients("550 5.1.1 No such user")   # RCPT answered with this reply

``self_signed_tls(directory)`` makes a certificate for 127.0.0.1 / localhost and returns
``(server_context, client_context)``, the client trusting only that certificate.

Everything is thread-safe: tests read ``.requests`` / ``.messages`` (copies) while the servers
record from their own threads.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar, cast

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.servers import free_port
from vigie.ops.tls import ensure_dev_certificate

T = TypeVar("T")


class Arrivals(Generic[T]):
    """What a server records from its own threads, in arrival order: tests read copies and wait
    for more. ``lock`` (re-entrant) may guard the server's other state too."""

    def __init__(self, what: str) -> None:
        self.lock = threading.Condition()
        self._items: list[T] = []
        self._what = what  # as the timeout message counts them: "request(s)", ...

    def add(self, item: T) -> None:
        with self.lock:
            self._items.append(item)
            self.lock.notify_all()

    def copy(self) -> list[T]:
        with self.lock:
            return list(self._items)

    def clear(self) -> None:
        with self.lock:
            self._items.clear()

    def wait_for(self, count: int, timeout: float) -> list[T]:
        """Block until at least ``count`` arrived; return them all."""
        with self.lock:
            if not self.lock.wait_for(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._items)} {self._what} after {timeout} s, expected {count}"
                )
            return list(self._items)


class _Started:
    """``with server:`` starts it and stops it afterwards."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# HTTP


class ReceivedRequest(NamedTuple):
    """One request as the receiver saw it; ``headers`` is case-insensitive."""

    path: str  # path and query string, e.g. "/hook?x=1"
    headers: httpx.Headers
    body: bytes
    received_at: float  # time.monotonic() when the body had been read
    method: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers: status, body, extra headers, after sleeping ``delay`` s."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class HttpReceiver(_Started):
    """An HTTP/1.1 server on 127.0.0.1 (a free port) that records requests (any method)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._requests = Arrivals[ReceivedRequest]("request(s)")
        self._lock = self._requests.lock  # also guards the scripted answers
        self._queue: deque[Reply] = deque()
        self._default = Reply()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> Self:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"http-receiver-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a delay
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    # address
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # scripting the answers
    def respond_with(self, status: int, **reply: Any) -> None:
        """Set the default answer (used when the queue is empty); ``reply``: the ``body``,
        ``headers`` and ``delay`` of :class:`Reply`."""
        with self._lock:
            self._default = Reply(status, **reply)

    def enqueue(self, status: int, **reply: Any) -> None:
        """Add a one-off answer (as :meth:`respond_with`'s); queued answers go first, in order."""
        with self._lock:
            self._queue.append(Reply(status, **reply))

    # what arrived
    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, in arrival order."""
        return self._requests.copy()

    def clear(self) -> None:
        """Forget recorded requests and queued answers (the default answer stays)."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; return them all."""
        return self._requests.wait_for(count, timeout)

    # internals
    def _record(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._requests.add(request)
            return self._queue.popleft() if self._queue else self._default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self._read_body()
                request = ReceivedRequest(
                    path=self.path,
                    headers=httpx.Headers(list(self.headers.items())),
                    body=body,
                    received_at=time.monotonic(),
                    method=self.command,
                )
                reply = receiver._record(request)
                if reply.delay and receiver._stopping.wait(reply.delay):
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client gave up (timeout): nothing to answer to
                    self.close_connection = True

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_GET(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as received (CRLF line ends)
    message: EmailMessage  # parsed, with LF line ends
    received_at: float  # time.monotonic()
    tls: bool  # the session had switched to TLS (STARTTLS)
    login: str | None  # the authenticated user, if any


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        rejection = self.sink._rcpt_rejection
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rejection = self.sink._data_rejection
        if rejection is not None:
            return rejection
        data = cast(bytes, envelope.original_content or envelope.content)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default),
            received_at=time.monotonic(),
            tls=session.ssl is not None,
            login=login,
        )
        self.sink._record(mail)
        return "250 Message accepted for delivery"


class SmtpSink(_Started):
    """An SMTP server on 127.0.0.1 keeping every message it accepts.

    ``tls_context``: offer STARTTLS with it (see :func:`self_signed_tls`);
    ``require_starttls``: refuse mail before STARTTLS;
    ``auth``: ``(user, password)`` accepted by AUTH PLAIN/LOGIN (offered only after STARTTLS when
    a ``tls_context`` is given, else on the plain connection).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self._messages = Arrivals[ReceivedMail]("message(s)")
        self._rcpt_rejection: str | None = None
        self._data_rejection: str | None = None
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        if auth is not None:
            kwargs.update(
                authenticator=_authenticator(auth),
                auth_require_tls=tls_context is not None,
            )
        self._controller = Controller(
            _SinkHandler(self), hostname="127.0.0.1", port=self.port, ready_timeout=5, **kwargs
        )
        self._running = False

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> Self:
        if not self._running:
            self._controller.start()
            self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False

    def reject_recipients(self, reply: str | None) -> None:
        """Answer every RCPT with ``reply`` (e.g. ``"550 5.1.1 No such user"``); None: accept."""
        self._rcpt_rejection = reply

    def reject_data(self, reply: str | None) -> None:
        """Answer every DATA with ``reply`` (e.g. ``"451 Try later"``); None: accept."""
        self._data_rejection = reply

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._messages.copy()

    def clear(self) -> None:
        self._messages.clear()

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        return self._messages.wait_for(count, timeout)

    def _record(self, mail: ReceivedMail) -> None:
        self._messages.add(mail)


def _authenticator(
    credentials: tuple[str, str],
) -> Callable[[SMTP, Session, Envelope, str, Any], AuthResult]:
    user, password = credentials

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


# --------------------------------------------------------------------------------------------
# TLS


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh certificate for 127.0.0.1 and localhost: ``(server_context, client_context)``.

    The same kind of certificate as the gateway's dev one (:mod:`vigie.ops.tls`), made anew in
    ``directory``; the client context trusts only that certificate and checks the host name.
    """
    files = ensure_dev_certificate(directory, ("localhost", "127.0.0.1"), force=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    client = ssl.create_default_context(cafile=str(files.cert))
    return server, client
