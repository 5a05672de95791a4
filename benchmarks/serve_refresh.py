"""How long `diffcli serve` takes to re-run a file after a save: Session.refresh (read, parse,
grad, the table's rows, the graph's SVG where it is drawn), in-process, median of 5, for programs
of 10 to 1,000 statements. The page's own time to draw what arrives is the browser test's figure
(tests/test_browser.py prints the whole change-to-visible latency).

    python benchmarks/serve_refresh.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffcli import server  # noqa: E402
from diffcli.renderers import page  # noqa: E402


def program(statements: int) -> str:
    return "x0 = 0.5\n" + "".join(f"x{i} = x{i - 1} + 0.1 sin(x{i - 1})\n" for i in range(1, statements))


def refresh_seconds(statements: int, max_nodes: int) -> tuple[float, bool, str | None]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.expr"
        path.write_text(program(statements))
        session = server.Session(str(path), {}, None, (), 6, max_nodes)
        times = []
        for _ in range(5):
            data, problem = session.read()
            started = time.perf_counter()
            session.refresh(data, problem)
            times.append(time.perf_counter() - started)
        state = session.message["state"]
        assert state["ok"], state.get("diagnostic")
        return statistics.median(times), state["svg"] is not None, state["graph_note"]


def main() -> None:
    print("| statements | graph drawn | re-run after a save (median of 5) |")
    print("| ---: | --- | ---: |")
    for statements, limit in ((10, page.MAX_NODES), (80, page.MAX_NODES), (1000, page.MAX_NODES),
                              (1000, 10**6)):
        seconds, drawn, why = refresh_seconds(statements, limit)
        note = "yes" if drawn else f"no: {why}"
        print(f"| {statements:,} | {note} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
