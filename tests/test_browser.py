"""The live page in a real browser: Debian's headless Chromium, driven by Playwright.

One page load walks the whole issue: read a value from the table and from the SVG, rewrite the
file and wait for the new value, write a syntax error and see the diagnostic above the kept
drawing, change an input in the page and see the gradient recomputed, click a graph node, and
check that the page asked nothing of any other server. The change-to-visible latency is printed
(not asserted). DIFFCLI_SCREENSHOT=PATH saves the screenshot that docs/serve.md shows.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from diffcli import server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
CHAIN = "a = 2\nb = 5 - 3a\nc = b^2\ng = c - o   # o is given with --set\n"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "the browser tests need Chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # served by a relative name, as a person types it
    path = tmp_path / "chain.expr"
    path.write_text(CHAIN)
    httpd, session, url = server.start("chain.expr", {"o": 1.0}, port=0, sweeps=())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield url, path
    session.stopping.set()
    httpd.shutdown()
    httpd.server_close()


def cell(page, name, column):
    return page.locator(f'#table tr[data-name="{name}"] td[data-column="{column}"]')


def records(page) -> list[str]:
    """The text of every node of the drawn graph, its fields joined by a blank."""
    return page.locator("#graph svg g.node").evaluate_all(
        "nodes => nodes.map(n => [...n.querySelectorAll('text')].map(t => t.textContent).join(' '))")


def test_the_live_page(browser, served, capsys):
    url, path = served
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ok=true]")

    # a value from the table, and the same one from the SVG
    assert cell(page, "a", "∂g/∂name").inner_text() == "6"  # g = (5 - 3a)^2 - o: dg/da = -6(5 - 3a)
    assert cell(page, "g", "value").inner_text() == "0"
    assert "a 2 grad 6" in records(page), records(page)

    # the file is rewritten: the page shows the new value, unasked, and marks what moved
    written = time.perf_counter()
    path.write_text(CHAIN.replace("a = 2", "a = 3"))
    page.wait_for_selector('#table tr[data-name="a"] td[data-column="value"]:text-is("3")')
    latency = time.perf_counter() - written
    assert cell(page, "a", "∂g/∂name").inner_text() == "24"
    assert "g value: 0 → 15" in page.inner_text("#changed")
    assert "a 3 grad 24" in records(page)

    # a syntax error: the diagnostic, its place marked in the source, the last drawing kept
    path.write_text("a = 3   # 🙂 (one code point, two UTF-16 units)\nb = 5 - 3a\nc = b^2 +\ng = c - o\n")
    page.wait_for_selector("body[data-ok=false]")
    diagnostic = page.inner_text("#diagnostic")
    assert diagnostic.startswith("error: ") and ":3:" in diagnostic and "3 | c = b^2 +" in diagnostic
    wrong = page.locator("#source li").nth(2).locator("mark.wrong")
    assert wrong.count() == 1 and wrong.inner_text() == " "  # the end of line 3, after the `+`
    assert page.locator("#graph svg").count() == 1 and "stale" in page.get_attribute("#results", "class")
    assert cell(page, "a", "∂g/∂name").inner_text() == "24"
    if os.environ.get("DIFFCLI_SCREENSHOT_ERROR"):
        page.screenshot(path=os.environ["DIFFCLI_SCREENSHOT_ERROR"], full_page=True)

    # fixed again, then an input changed in the page: the gradient is recomputed
    path.write_text(CHAIN)
    page.wait_for_selector("body[data-ok=true]")
    field = page.locator('#inputs input[name="a"]')
    field.fill("1")
    changed = time.perf_counter()
    field.dispatch_event("change")
    page.wait_for_selector('#table tr[data-name="a"] td[data-column="∂g/∂name"]:text-is("-12")')
    recomputed = time.perf_counter() - changed
    assert cell(page, "g", "value").inner_text() == "3"
    assert path.read_text() == CHAIN  # the page's inputs never write the file

    # a click on a graph node highlights its row and its place in the source
    page.locator("#graph svg g.node", has=page.locator("text", has_text="×3")).first.click()
    assert page.locator("#table tr.picked").get_attribute("data-name") == "b"
    assert page.locator("#source mark.pick").inner_text() == "3a"
    if os.environ.get("DIFFCLI_SCREENSHOT"):
        page.screenshot(path=os.environ["DIFFCLI_SCREENSHOT"], full_page=True)

    assert errors == []
    assert requests and all(request.startswith(url) for request in requests), requests
    with capsys.disabled():
        print(f"\n  live page: a change on disk visible in {latency * 1000:.0f} ms; "
              f"an input changed in the page recomputed in {recomputed * 1000:.0f} ms")


def test_the_sweep_plot_is_drawn(browser, tmp_path):
    path = tmp_path / "neuron.expr"
    path.write_text("x = 0\nw = 2\ny = tanh(w*x)\n")
    from diffcli.commands.points import parse_sweep

    httpd, session, url = server.start(str(path), {}, port=0, sweeps=[parse_sweep("x=-2:2:21")])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ok=true]")
        assert page.locator("#plot-box").is_visible()
        assert "∂y/∂x" in page.locator("#plot svg").text_content()
    finally:
        session.stopping.set()
        httpd.shutdown()
        httpd.server_close()
