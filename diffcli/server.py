"""`diffcli serve`: a local page of one file's results, redrawn whenever the file changes on disk.

A watcher thread polls the file (its size, modification time and inode; when one of them moves,
its bytes' hash, so that a save of the same text is no change): this works on every platform and
file system, at one `stat` per POLL_SECONDS. Each change is run (renderers/page.snapshot) and
pushed to every open page as a server-sent event; the page (renderers/page_assets) draws it.

The server is the standard library's ThreadingHTTPServer, which is all a single local user's page
needs, held within bounds:
- it answers only its own few paths (the page, its script and style, the events and the inputs):
  no path maps to the file system, so `/../`, absolute paths and symlinks are all simply 404;
- it refuses a `Host` that is not the address it serves (DNS rebinding), and a POST whose
  `Origin` is another site's or whose body is not JSON (cross-site requests);
- at most MAX_CONNECTIONS connections at once (more are closed at once), MAX_STREAMS event
  streams, a request has REQUEST_SECONDS to arrive whole (a slow one is cut off) and a body
  MAX_BODY bytes; every socket read and write times out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .errors import DiffcliError
from .program import parse, read_source
from .renderers import page

POLL_SECONDS = 0.1
MAX_CONNECTIONS = 32
MAX_STREAMS = 8
REQUEST_SECONDS = 5.0
MAX_BODY = 64 * 1024
KEEPALIVE_SECONDS = 15.0
MAX_FILE_BYTES = 16 * 2**20  # a live page of a bigger file would not be live
MAX_PLOT_POINTS = 20_000     # as `plot --max-points`: a 141 × 141 heat map takes seconds to draw


class Session:
    """The served file, its inputs, and the latest snapshot; every change wakes the event streams."""

    def __init__(self, path: str, values: dict[str, float], of: str | None, sweeps, precision: int,
                 max_nodes: int):
        self.path, self.values, self.of, self.sweeps = path, dict(values), of, sweeps
        self.precision, self.max_nodes = precision, max_nodes
        self.overrides: dict[str, float] = {}   # inputs changed in the page
        self.version = 0
        self.message: dict = {}
        self.last_good: dict | None = None
        self.text: str | None = None
        self.changed = threading.Condition()
        self.compute = threading.Lock()
        self.stopping = threading.Event()
        self.seconds = 0.0                      # how long the last run took

    # -- reading and running
    def signature(self):
        """What the watcher compares: None if the file cannot be read at all."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns, info.st_ino

    def read(self) -> tuple[bytes | None, DiffcliError | None]:
        try:
            with open(self.path, "rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            return None, DiffcliError("io", f"cannot read {self.path}: {error.strerror or error}")
        if len(data) > MAX_FILE_BYTES:
            return None, DiffcliError("io", f"{self.path} is larger than {MAX_FILE_BYTES // 2**20} MiB, "
                                      "more than the page shows", help="use `diffcli grad` on it")
        return data, None

    def refresh(self, data: bytes | None, problem: DiffcliError | None) -> None:
        """Run the file's text (or report why it cannot be read) and publish the result."""
        with self.compute:
            started = time.perf_counter()
            try:
                if problem is not None:
                    raise problem
                self.text = read_source(data, self.path)
                program = parse(self.text, self.path)
                self.overrides = {k: v for k, v in self.overrides.items()  # (the page sets numbers only)
                                  if k in program.inputs and not getattr(program.inputs[k], "shape", ())}
                state = page.snapshot(program, {**self.values, **self.overrides}, self.of, self.sweeps,
                                      precision=self.precision, max_nodes=self.max_nodes)
            except DiffcliError as error:
                state = page.failure(error, self.text, self.path)
            except RecursionError:
                state = page.failure(DiffcliError("syntax", "the program is nested too deeply to process"),
                                     self.text, self.path)
            except MemoryError:
                state = page.failure(DiffcliError("io", "out of memory"), self.text, self.path)
            except Exception as error:  # a bug in diffcli: say so in the page, and keep serving
                state = page.failure(DiffcliError(
                    "io", f"internal error in diffcli: {type(error).__name__}: {error}",
                    help="this is a bug; please report it with the file that caused it"), self.text, self.path)
            self.seconds = time.perf_counter() - started
            moved = page.changes(self.last_good, state)
            if state["ok"]:
                self.last_good = state
            self.publish({"state": state, "changes": moved, "seconds": round(self.seconds, 4)})

    def settable(self) -> set[str]:
        """The inputs the page may set: those of the last program that ran."""
        return set(self.last_good["inputs"]) if self.last_good else set()

    def set_inputs(self, given: dict[str, float]) -> None:
        self.overrides.update(given)
        data, problem = self.read()
        self.refresh(data, problem)

    def publish(self, message: dict) -> None:
        with self.changed:
            self.version += 1
            message["version"] = self.version
            self.message = message
            self.encoded = json.dumps(message, allow_nan=False, separators=(",", ":"))
            self.changed.notify_all()

    # -- the watch
    def watch(self) -> None:
        seen, settling, digest = object(), object(), None
        while not self.stopping.wait(POLL_SECONDS):
            now = self.signature()
            if now == seen:
                continue
            if now != settling:
                # changed since the last look: an editor that saves in place truncates, then writes;
                # read once the file has held still for a poll, not the empty moment between
                settling = now
                continue
            seen = now
            data, problem = self.read()
            new_digest = hashlib.sha256(data).digest() if data is not None else None
            if data is not None and new_digest == digest:
                continue  # touched, or saved unchanged
            digest = new_digest
            self.refresh(data, problem)


class Handler(BaseHTTPRequestHandler):
    def version_string(self):
        return "diffcli"
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers between requests

    session: Session  # set on the subclass made for each server
    hosts: set[str]
    any_ip: bool

    def setup(self):
        super().setup()
        self.connection.settimeout(REQUEST_SECONDS)
        # a request that trickles in is cut off when its time is up, whatever its pace
        self.deadline = threading.Timer(REQUEST_SECONDS, self._cut_off)
        self.deadline.daemon = True
        self.deadline.start()

    def _cut_off(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self):
        self.deadline.cancel()
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):  # the terminal shows the server's own lines only
        pass

    # -- checks
    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        try:
            parts = urlsplit("//" + host)
            port, name = parts.port, (parts.hostname or "")
        except ValueError:
            return False
        if port != self.server.server_address[1]:
            return False
        if name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_ip  # bound to every address: any address literal is one it serves

    def _send(self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                         "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: HTTPStatus, why: str):
        self._send(status, (why + "\n").encode())

    # -- the paths
    def do_GET(self):
        self.deadline.cancel()
        if not self._host_ok():
            return self._refuse(HTTPStatus.MISDIRECTED_REQUEST, "not the address this server serves")
        path = self.path
        if path == "/events":
            if self.command == "HEAD":
                return self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "an event stream is read with GET")
            return self._events()
        if path == "/state":
            with self.session.changed:
                body = self.session.encoded
            return self._send(HTTPStatus.OK, body.encode(), "application/json")
        found = page.asset(path)
        if found is None:
            return self._refuse(HTTPStatus.NOT_FOUND, "not found")
        self._send(HTTPStatus.OK, *found)

    do_HEAD = do_GET

    def do_POST(self):
        if not self._host_ok():
            return self._refuse(HTTPStatus.MISDIRECTED_REQUEST, "not the address this server serves")
        if self.path != "/inputs":
            return self._refuse(HTTPStatus.NOT_FOUND, "not found")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            return self._refuse(HTTPStatus.FORBIDDEN, "another site's page cannot set the inputs")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._refuse(HTTPStatus.LENGTH_REQUIRED, "say the body's length")
        if not 0 <= length <= MAX_BODY:
            return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {MAX_BODY} bytes")
        try:
            body = self.rfile.read(length)
        except OSError:
            return
        self.deadline.cancel()  # the request is in: the time from here on is the server's own work
        try:
            given = json.loads(body)
            ok = isinstance(given, dict) and all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v) for k, v in given.items())
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            return self._refuse(HTTPStatus.BAD_REQUEST, 'send {"name": finite number, ...}')
        unknown = set(given) - self.session.settable()
        if unknown:  # kept, it would break every run after this one
            return self._refuse(HTTPStatus.BAD_REQUEST, "not an input of the file: " + ", ".join(sorted(unknown)))
        self.session.set_inputs({k: float(v) for k, v in given.items()})
        self._send(HTTPStatus.NO_CONTENT, b"")

    def _events(self):
        if not self.server.streams.acquire(blocking=False):
            return self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "too many pages open")
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            session, sent = self.session, 0
            while not session.stopping.is_set():
                with session.changed:
                    if session.version == sent:
                        session.changed.wait(KEEPALIVE_SECONDS)
                    version, data = session.version, getattr(session, "encoded", None)
                if session.stopping.is_set():
                    break
                if version == sent or data is None:
                    self.wfile.write(b": still here\n\n")  # also finds a page that was closed
                else:
                    self.wfile.write(b"event: state\ndata: " + data.encode() + b"\n\n")
                    sent = version
                self.wfile.flush()
        except OSError:
            pass  # the page went away
        finally:
            self.server.streams.release()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, address, handler):
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            self.shutdown_request(request)  # full: close at once rather than queue without end
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address):
        """A client that went away (a closed tab, a timed-out request) is no error of the server's;
        anything else is one line, never socketserver's traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        sys.stderr.write(f"warning: a request from {client_address[0]} failed: {type(error).__name__}: {error}\n")


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def start(path: str, values: dict[str, float], of: str | None = None, sweeps=(), *, host: str = "127.0.0.1",
          port: int = 8765, precision: int = 6, max_nodes: int = page.MAX_NODES):
    """Bind, run the file once, start the watch: (server, session, url). Serve with serve_forever."""
    points = math.prod(sweep.num for sweep in sweeps)
    if sweeps and points > MAX_PLOT_POINTS:
        raise DiffcliError("input", f"the sweep has {points:,} points, too many to plot on every save "
                           f"(at most {MAX_PLOT_POINTS:,})", help="take fewer points")
    session = Session(path, values, of, sweeps, precision, max_nodes)
    data, problem = session.read()
    if data is None:
        raise problem
    session.refresh(data, None)
    bind = "127.0.0.1" if host == "localhost" else host
    hosts = {bind, "localhost", "127.0.0.1"} if bind in LOOPBACK else {bind, "localhost", "127.0.0.1", "::1"}
    handler = type("BoundHandler", (Handler,), {"session": session, "hosts": hosts,
                                                "any_ip": bind in ("0.0.0.0", "::")})
    try:
        server = Server((bind, port), handler)
    except OSError as error:
        raise DiffcliError("io", f"cannot serve on {host}:{port}: {error.strerror or error}",
                           help="choose another port with --port N (--port 0 picks a free one)") from None
    shown_host = f"[{bind}]" if ":" in bind else bind
    url = f"http://{shown_host}:{server.server_address[1]}/"
    watcher = threading.Thread(target=session.watch, name="diffcli-watch", daemon=True)
    watcher.start()
    return server, session, url


def run(path: str, values: dict[str, float], of: str | None, sweeps, *, host: str, port: int, precision: int,
        max_nodes: int, open_browser: bool) -> None:
    """Serve until Ctrl-C, then stop cleanly."""
    if host not in LOOPBACK:
        sys.stderr.write(f"warning: --host {host}: the page is reachable from other machines; it shows "
                         f"{path}'s text and results to anyone who can reach this address\n")
    server, session, url = start(path, values, of, sweeps, host=host, port=port, precision=precision,
                                 max_nodes=max_nodes)
    try:
        sys.stdout.write(f"diffcli serve: {url}  ({path}; Ctrl-C stops)\n")
        sys.stdout.flush()
    except OSError as error:  # nobody would learn the address: do not serve blind
        server.server_close()
        raise DiffcliError("io", f"cannot write to standard output: {error.strerror or error}") from None
    if open_browser:
        import webbrowser

        port = server.server_address[1]
        local = {"0.0.0.0": f"http://127.0.0.1:{port}/", "::": f"http://[::1]:{port}/"}  # every address: this one
        webbrowser.open(local.get(host, url))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        session.stopping.set()
        with session.changed:
            session.changed.notify_all()
        server.server_close()
    try:
        sys.stdout.write("diffcli serve: stopped\n")
        sys.stdout.flush()
    except OSError:
        pass  # stopped all the same
