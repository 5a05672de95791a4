"""`diffcli serve` over HTTP: what it serves, what it refuses, how it watches, how it stops.

The server runs in-process (diffcli.server.start) for the HTTP checks, and as the real command for
Ctrl-C and --host. The page in a real browser: test_browser.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from diffcli import server
from diffcli.renderers import page
from tests.conftest import diffcli_command

CHAIN = "a = 2\nb = 5 - 3a\nc = b^2\ng = c - o\n"


@pytest.fixture
def served(tmp_path):
    """A server of a small file on a free port: (session, port, path)."""
    path = tmp_path / "chain.expr"
    path.write_text(CHAIN)
    httpd, session, url = server.start(str(path), {"o": 1.0}, port=0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield session, httpd.server_address[1], path
    session.stopping.set()
    httpd.shutdown()
    httpd.server_close()


def request(port, method, target, body=None, headers=None, host=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    for key, value in (headers or {}).items():
        connection.putheader(key, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def state(port) -> dict:
    return json.loads(request(port, "GET", "/state")[1])


def wait_for(port, condition, seconds=10.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        message = state(port)
        if condition(message):
            return message
        assert time.monotonic() < deadline, f"never came: {message['state'].get('diagnostic')}"
        time.sleep(0.02)


def cell(message, name, column):
    row = next(r for r in message["state"]["rows"] if r["name"] == name)
    return row["cells"][message["state"]["columns"].index(column)]


def test_the_page_and_its_own_files_only(served):
    _, port, path = served
    response, body = request(port, "GET", "/")
    assert response.status == 200 and b'<script src="/page.js"' in body
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    for asset in ("/page.js", "/page.css"):
        assert request(port, "GET", asset)[0].status == 200
    assert request(port, "HEAD", "/events")[0].status == 405  # would otherwise hold a stream open
    (path.parent / "link.expr").symlink_to(path)
    for target in ("/../etc/passwd", "/..%2f..%2fetc%2fpasswd", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                   str(path), "/chain.expr", "/link.expr", "/page.js/../page.html", "/page.html",
                   "/?file=/etc/passwd", "/page.js?x", "http://127.0.0.1/etc/passwd"):
        response, body = request(port, "GET", target)
        assert response.status == 404, target
        assert b"root:" not in body and b"a = 2" not in body


def test_every_script_and_style_is_served_by_diffcli():
    html = (page.ASSETS / "page.html").read_text()
    for marker in ("http:", "https:", "//cdn", "@import"):
        assert marker not in html + (page.ASSETS / "page.css").read_text(), marker
    assert "http" not in (page.ASSETS / "page.js").read_text()


def test_a_host_that_is_not_the_served_address_is_refused(served):
    _, port, _ = served
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"10.0.0.1:{port}", "",
                 f"localhost.evil.example:{port}", "[::1"):
        assert request(port, "GET", "/state", host=host)[0].status == 421, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert request(port, "GET", "/state", host=host)[0].status == 200, host


def test_inputs_set_in_the_page_recompute(served):
    _, port, _ = served
    before = state(port)
    assert cell(before, "a", "∂g/∂name") == "6"    # g = (5 - 3a)^2 - o: dg/da = -6(5 - 3a) = 6 at a = 2
    json_header = {"Content-Type": "application/json"}
    response, _ = request(port, "POST", "/inputs", json.dumps({"a": 1}).encode(), json_header)
    assert response.status == 204
    after = state(port)
    assert after["version"] > before["version"]
    assert cell(after, "a", "∂g/∂name") == "-12" and cell(after, "g", "value") == "3"
    assert {"name": "a", "column": "value", "before": "2", "after": "1"} in after["changes"]


def test_requests_that_could_do_harm_are_refused(served):
    session, port, _ = served
    version = state(port)["version"]
    body = json.dumps({"a": 1}).encode()
    cases = [
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, body, 403),
        ({"Content-Type": "text/plain"}, body, 415),  # a cross-site form could send this one
        ({"Content-Type": "application/json"}, b"[1, 2]", 400),
        ({"Content-Type": "application/json"}, b'{"a": "1"}', 400),
        ({"Content-Type": "application/json"}, b"[" * 50_000, 400),
        ({"Content-Type": "application/json"}, b'{"a": NaN}', 400),
        ({"Content-Type": "application/json"}, b'{"b": 1}', 400),      # computed, not an input
        ({"Content-Type": "application/json"}, b'{"zz": 1}', 400),     # not in the file
    ]
    for headers, data, status in cases:
        assert request(port, "POST", "/inputs", data, headers)[0].status == status, (headers, data[:20])
    huge = {"Content-Type": "application/json", "Content-Length": str(10**12)}
    assert request(port, "POST", "/inputs", None, huge)[0].status == 413
    assert request(port, "POST", "/", body, {"Content-Type": "application/json"})[0].status == 404
    assert state(port)["version"] == version  # nothing was run


def test_slow_and_many_connections_cannot_exhaust_it(served, monkeypatch):
    _, port, _ = served
    monkeypatch.setattr(server, "REQUEST_SECONDS", 0.5)
    idle, before = [], threading.active_count()
    for _ in range(server.MAX_CONNECTIONS + 10):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never finish it
        idle.append(sock)
    time.sleep(0.2)
    # a bounded number of threads: a handler and its deadline per connection let in, no more
    assert threading.active_count() - before <= 2 * server.MAX_CONNECTIONS
    time.sleep(1.0)
    for sock in idle:  # each was cut off (or never let in): reads end
        sock.settimeout(5)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
        sock.close()
    assert request(port, "GET", "/state")[0].status == 200  # and the server still answers


def test_a_trickled_request_is_cut_off(served, monkeypatch):
    _, port, _ = served
    monkeypatch.setattr(server, "REQUEST_SECONDS", 0.5)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(5)
    started = time.monotonic()
    closed = False
    for _ in range(100):  # a byte every 0.1 s keeps every read alive: only the deadline ends it
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        time.sleep(0.1)
        if _recv_or_closed(sock) == b"":
            closed = True
            break
    assert closed and time.monotonic() - started < 5
    sock.close()


def _recv_or_closed(sock):
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None


def test_a_change_on_disk_is_run_and_an_error_keeps_the_last_good_results(served):
    _, port, path = served
    first = state(port)
    path.write_text(CHAIN.replace("a = 2", "a = 3"))
    moved = wait_for(port, lambda m: m["state"]["ok"] and cell(m, "a", "value") == "3")
    assert cell(moved, "a", "∂g/∂name") == "24"     # -6(5 - 9) = 24
    assert any(c["name"] == "g" and c["column"] == "value" for c in moved["changes"])
    assert moved["state"]["svg"].lstrip().startswith(("<?xml", "<svg", "<!--"))
    path.write_text("a = 3\nb = 5 - 3a\nc = b^2 +\ng = c - o\n")
    broken = wait_for(port, lambda m: not m["state"]["ok"])
    diagnostic = broken["state"]["diagnostic"]
    assert diagnostic.startswith("error: ") and f" --> {path}:3:" in diagnostic and "\n3 | c = b^2 +" in diagnostic
    start, _ = broken["state"]["span"]
    assert broken["state"]["source"][:start].count("\n") == 2  # marked on line 3
    assert broken["state"]["error"]["line"] == 3
    version = broken["version"]
    path.write_text(path.read_text())  # saved again unchanged: no new run
    time.sleep(0.8 * server.POLL_SECONDS)
    assert state(port)["version"] == version
    assert first["version"] < version


def test_a_missing_file_is_an_error_and_a_big_file_is_not_drawn(tmp_path):
    with pytest.raises(server.DiffcliError, match="cannot read"):
        server.start(str(tmp_path / "none.expr"), {}, port=0)
    from diffcli.commands.points import parse_sweep

    with pytest.raises(server.DiffcliError, match="too many to plot"):  # refused before anything runs
        server.start(str(tmp_path / "none.expr"), {}, sweeps=[parse_sweep("x=0:1:10000000000")], port=0)
    path = tmp_path / "long.expr"
    path.write_text("x0 = 1\n" + "".join(f"x{i} = x{i - 1} + sin(x{i - 1})\n" for i in range(1, 1000)))
    httpd, session, _ = server.start(str(path), {}, port=0)
    try:
        shown = session.message["state"]
        assert shown["ok"] and len(shown["rows"]) == 1000
        assert shown["svg"] is None and "more than the page draws" in shown["graph_note"]
    finally:
        session.stopping.set()
        httpd.server_close()


def test_ctrl_c_stops_it_cleanly_and_another_host_is_warned_about(tmp_path):
    path = tmp_path / "chain.expr"
    path.write_text(CHAIN)
    opened = tmp_path / "opened"
    browser = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\").write(sys.argv[2])' {opened} %s"
    process = subprocess.Popen(diffcli_command() + ["serve", str(path), "--set", "o=1", "--port", "0",
                                                    "--host", "0.0.0.0", "--open"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, BROWSER=browser))
    try:
        line = process.stdout.readline()
        assert line.startswith("diffcli serve: http://0.0.0.0:")
        port = int(line.split(":")[3].split("/")[0])
        assert request(port, "GET", "/state")[0].status == 200
        for _ in range(100):  # --open: the browser was asked for the page, at an address it can reach
            if opened.exists() and opened.read_text():
                break
            time.sleep(0.05)
        assert opened.read_text() == f"http://127.0.0.1:{port}/"
        events = socket.create_connection(("127.0.0.1", port))  # an open event stream must not hold it up
        events.sendall(f"GET /events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        events.recv(100)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopped" in out
    assert err.startswith("warning: --host 0.0.0.0") and "Traceback" not in err


def test_serve_refuses_standard_input_and_a_bad_sweep(diffcli_run):
    done = diffcli_run("serve", "-")
    assert done.returncode == 2 and "not -" in done.stderr_text
    done = diffcli_run("serve", os.devnull, "--sweep", "x=1:2")
    assert done.returncode == 2 and "Traceback" not in done.stderr_text


def test_a_save_in_place_is_run_once_whole_not_while_empty(served, monkeypatch):
    session, port, path = served
    published = []
    real = session.publish
    monkeypatch.setattr(session, "publish", lambda message: (published.append(message), real(message))[1])
    for value in range(6, 12):
        with open(path, "w") as file:  # an editor saving in place: the file truncated, then written
            file.flush()
            time.sleep(0.9 * server.POLL_SECONDS)  # a poll may see it empty, but no two polls can
            file.write(CHAIN.replace("a = 2", f"a = {value}"))
        wait_for(port, lambda m: m["state"]["ok"] and cell(m, "a", "value") == str(value))
    assert published and all(m["state"]["ok"] for m in published), [m["state"].get("diagnostic") for m in published]


def test_a_bug_while_running_is_shown_and_the_watch_goes_on(served, monkeypatch):
    _, port, path = served
    real = page.snapshot

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(page, "snapshot", broken)
    path.write_text(CHAIN.replace("a = 2", "a = 4"))
    shown = wait_for(port, lambda m: not m["state"]["ok"])
    assert "internal error in diffcli: ValueError: a bug" in shown["state"]["diagnostic"]
    monkeypatch.setattr(page, "snapshot", real)
    path.write_text(CHAIN.replace("a = 2", "a = 5"))
    assert cell(wait_for(port, lambda m: m["state"]["ok"]), "a", "value") == "5"


def test_a_port_in_use_is_an_error_that_says_what_to_do(tmp_path):
    path = tmp_path / "chain.expr"
    path.write_text(CHAIN)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(server.DiffcliError, match="cannot serve on") as raised:
            server.start(str(path), {"o": 1.0}, port=taken.getsockname()[1])
        assert "--port 0" in raised.value.help
    finally:
        taken.close()


def test_a_closed_standard_output_is_an_error_not_a_blind_server(tmp_path):
    path = tmp_path / "chain.expr"
    path.write_text(CHAIN)
    done = subprocess.run(diffcli_command() + ["serve", str(path), "--set", "o=1", "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().startswith("error: cannot write to standard output")


def test_an_array_program_shows_what_grads_table_shows(tmp_path):
    path = tmp_path / "mse.expr"
    path.write_text("x = [1, 2, 3]\nw = 2\ny = w*x\nloss = mean(y^2)\n")
    httpd, session, _ = server.start(str(path), {}, port=0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        shown = state(port)
        assert cell(shown, "x", "value") == "3: [1 2 3]" and cell(shown, "y", "value") == "3: [2 4 6]"
        assert cell(shown, "w", "∂loss/∂name") == "18.6667"     # d/dw mean(w²x²) = 2w·mean(x²) = 4·14/3
        assert shown["state"]["inputs"] == {"w": 2.0}           # an array is changed in the file
        # the graph as `diffcli graph` draws an array program: a node per array operation, with its shape
        assert shown["state"]["graph_note"] is None and "3: [2 4 6]" in shown["state"]["svg"]
        json_header = {"Content-Type": "application/json"}
        assert request(port, "POST", "/inputs", b'{"x": 1}', json_header)[0].status == 400
        assert request(port, "POST", "/inputs", b'{"w": 1}', json_header)[0].status == 204
        assert cell(state(port), "w", "∂loss/∂name") == "9.33333"
    finally:
        session.stopping.set()
        httpd.shutdown()
        httpd.server_close()


def test_a_client_that_went_away_prints_no_traceback(capsys):
    """socketserver prints a traceback for any error in a request; a closed tab is none of ours."""
    httpd = server.Server(("127.0.0.1", 0), server.Handler)
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"), ValueError("bug")):
            try:
                raise error
            except Exception:
                httpd.handle_error(None, ("127.0.0.1", 5))
    finally:
        httpd.server_close()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err == "warning: a request from 127.0.0.1 failed: ValueError: bug\n"


def test_a_number_set_in_the_page_is_dropped_when_its_input_becomes_an_array(served):
    # the page's a = 1 was kept for `a = [1, 2]`: every run a shape error the page could not undo
    _, port, path = served
    json_header = {"Content-Type": "application/json"}
    assert request(port, "POST", "/inputs", json.dumps({"a": 1}).encode(), json_header)[0].status == 204
    path.write_text("a = [1, 2]\nb = 5 - 3a\nc = sum(b^2)\ng = c - o\n")
    moved = wait_for(port, lambda m: "[" in (m["state"].get("source") or ""))
    assert moved["state"]["ok"], moved["state"].get("diagnostic")
    assert cell(moved, "a", "∂g/∂name") == "2: [-12 6]"     # -6(5 - 3a) at a = [1, 2]
