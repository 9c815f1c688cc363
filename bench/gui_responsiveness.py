"""GUI responsiveness: the longest GUI-thread stall per phase, before and after, in one run.

Usage::

    QT_QPA_PLATFORM=offscreen python bench/gui_responsiveness.py [DOCS] [--before REF]
        [--phases stream,citations,remove,close] [--quick] [--cache DIR] [--fake-embedder]

A 5 ms timer on the GUI thread records the gap between its ticks; a stall is the gap minus the
interval (ms). For each phase the bench prints the longest stall, p99 and p50, over the phase's
ticks. The phases, each in a fresh temporary data folder (``DESKTOP_RAG_HOME``) with the real
bundled models (ONNX/GGUF caches shared in ``--cache`` so only the first run converts them):

``stream``
    a 60-message conversation written with the app's own :class:`ConversationStore`, opened
    in the window (row ``open``), then a question whose answer the bundled model streams into
    it (row ``stream``: from Send to the answer's end, plus 0.5 s after);
``citations``
    a 1,000-page PDF made once with PyMuPDF from the filings in ``DOCS`` (kept in ``--cache``),
    indexed, then 30 different pages opened in the viewer the way a citation click does
    (``ChatPanel.citation_clicked`` -> ``SourcesPanel.show_citation``), each waited for until it
    is drawn (the click-to-page latency is printed too);
``remove``
    a generated text folder of >= 5,000 chunks indexed as a second collection, then removed from
    the library panel as a user does (selected, Remove clicked, the confirmation answered Yes),
    waited for until the list no longer shows it;
``close``
    the real app (``desktop_rag.gui.app.run``) in a child process indexing ``DOCS``, its window
    closed about 2 s after the indexing started: the seconds from the close to the event loop's
    end, the stalls meanwhile and the child's exit code.

"Before/after in one run": ``--before REF`` (default ``3903a33``, the commit before issue 29's GUI
work; ``none`` to skip) is checked out with ``git worktree add`` in a temporary folder (removed at
the end) and the same phases run there, in child processes whose ``PYTHONPATH`` is that tree.
Where the old code cannot run a phase the table says "n/a" and why. The "after" tree is the one
this script lives in. Phases 1-3 of one tree share one window (one child process); indexing the
setup data is measured too (row ``indexing (setup)``), for information.

``--quick`` is a smoke run: an 80-page PDF, 5 clicks, a 600-chunk collection, shorter waits.
``--fake-embedder`` indexes with the tests' fake embedder (no embedding model: faster setup;
retrieval for the streamed answer is then meaningless but the streaming is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "eval" / "docugami_sec10q" / "docs"
QUESTION = "What was Apple's total net sales for the quarter ended July 1, 2023?"
PHASES = ("stream", "citations", "remove", "close")
INTERVAL_MS = 5
RESULT = "GUI-BENCH-RESULT "
#: Goals (issue 29): the longest stall per phase, and the close.
GOAL_STALL_MS = 50.0
GOAL_CLOSE_S = 3.0


# -- the data (made in the parent, cached) ---------------------------------------------------
def build_pdf(docs: Path, pages: int, out: Path) -> Path:
    """A PDF of ``pages`` pages: the PDFs in ``docs`` appended one after another (again from the
    first when they run out) with PyMuPDF's ``insert_pdf``; made once, then reused."""
    if out.exists():
        return out
    import pymupdf

    sources = sorted(docs.glob("*.pdf"))
    if not sources:
        raise SystemExit(f"no PDF in {docs}")
    doc = pymupdf.open()
    while doc.page_count < pages:
        for src in sources:
            with pymupdf.open(src) as s:
                doc.insert_pdf(s, to_page=min(s.page_count, pages - doc.page_count) - 1)
            if doc.page_count >= pages:
                break
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    doc.save(tmp, garbage=3, deflate=True)
    doc.close()
    tmp.replace(out)
    return out


def make_text_folder(root: Path, files: int, paragraphs: int, words: int = 45) -> Path:
    """``files`` text files of ``paragraphs`` paragraphs of ``words`` words each (about one
    chunk per paragraph with the default chunker, as in ``tests/test_gui_window.py``)."""
    marker = root / ".complete"
    if marker.exists():
        return root
    rng = random.Random(7)
    vocab = [f"term{i}" for i in range(2000)] + ["orchard", "harvest", "ledger", "rainfall"]
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = "\n\n".join(
            f"Section {f}.{p}. " + " ".join(rng.choice(vocab) for _ in range(words)) + "."
            for p in range(paragraphs)
        )
        (root / f"part-{f:03d}.txt").write_text(text, encoding="utf-8")
    marker.write_text("", encoding="utf-8")
    return root


# -- in a child: the stall meter and waiting -------------------------------------------------
class StallMeter:
    """A 5 ms timer on the GUI thread; while a phase is labelled, each tick's gap minus the
    interval (ms) is recorded under that label."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: dict[str, list[float]] = {}
        self.label: str | None = None
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        now = time.perf_counter()
        if self.label is not None:
            gap = (now - self.last) * 1000 - INTERVAL_MS
            self.gaps.setdefault(self.label, []).append(max(0.0, gap))
        self.last = now

    def begin(self, label: str) -> None:
        """Record under ``label`` from now (the time before does not count)."""
        self.last = time.perf_counter()
        self.label = label

    def end(self) -> None:
        self.tick()
        self.label = None


def summary(gaps: list[float]) -> dict[str, float]:
    """max, p99 and p50 of stalls (ms) and the number of ticks."""
    if len(gaps) < 2:
        return {"ticks": len(gaps), "max": max(gaps, default=0.0), "p99": 0.0, "p50": 0.0}
    return {"ticks": len(gaps), "max": max(gaps), "p99": statistics.quantiles(gaps, n=100)[98],
            "p50": statistics.median(gaps)}  # fmt: skip


def wait_until(pred: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until ``pred()`` (polled every 10 ms) or ``timeout_s``."""
    from PySide6.QtCore import QEventLoop, QTimer

    if pred():
        return True
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(10)

    def check() -> None:
        if pred() or time.monotonic() > deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    return pred()


def settle(seconds: float) -> None:
    wait_until(lambda: False, seconds)


def conversation_messages(n: int) -> list[Any]:
    """``n`` messages as the chat saves them: questions, and answers with 5 sources, 3 evidence
    quotes and a marked figure (``checked`` left out where the tree's Message has none)."""
    import dataclasses

    from desktop_rag.core.conversations import Message

    has_checked = "checked" in {f.name for f in dataclasses.fields(Message)}
    words = ("The orchard yielded 38 tonnes of apples in 2022 [1], after frost in April damaged "
             "the blossom on the lower rows [2]; the cooperative paid 41 pence per kilogram [3]. ")  # fmt: skip
    text = words * 3
    s = text.index("41")
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(Message("user", f"Question {i}: how many tonnes in 2022?\nAnd why?"))
            continue
        sources = [{"n": k, "file": f"/docs/file{k}.pdf", "page": k, "text": "38 tonnes " * 20,
                    "start": 0, "end": 200, "score": 0.5, "cited": k < 3} for k in range(1, 6)]  # fmt: skip
        if not has_checked:
            out.append(Message("assistant", text, sources))
            continue
        evidence = [{"n": k, "file": f"/docs/file{k}.pdf", "page": k,
                     "text": "In 2022 the orchard yielded 38 tonnes of apples."} for k in range(1, 4)]  # fmt: skip
        checks = [{"kind": "figure", "claim": "41", "start": s, "end": s + 2, "supported": False}]
        checked = {"evidence": evidence, "checks": checks, "grounded": True}
        out.append(Message("assistant", text, sources, checked=checked))
    return out


def citation_sources(engine: Any, pdf: Path, count: int) -> list[dict[str, Any]]:
    """``count`` citation dicts (as ``Answer.to_json`` writes them) on different pages of
    ``pdf``, spread over it, each quoting ~150 characters of its page's indexed text."""
    import pymupdf

    with pymupdf.open(pdf) as doc:
        pages = doc.page_count
    step = max(1, pages // count)
    out: list[dict[str, Any]] = []
    used: set[int] = set()
    page = 1 + step // 2
    while len(out) < count and page <= pages:
        for p in range(page, min(pages, page + step - 1) + 1):
            if p in used:
                continue
            text = engine.page_text(str(pdf), p) or ""
            if len(text) < 400:
                continue
            a = text.find(" ", len(text) // 3) + 1
            b = text.rfind(" ", a, a + 160)
            used.add(p)
            out.append({"n": len(out) + 1, "file": str(pdf), "page": p, "text": text[a:b],
                        "start": a, "end": b, "score": 0.5, "cited": True})  # fmt: skip
            break
        page += step
    return out


def run_tree(args: argparse.Namespace) -> None:
    """In a child (``PYTHONPATH`` = the tree measured): phases stream, citations and remove in
    one window; prints one ``RESULT`` JSON line."""
    from PySide6.QtWidgets import QApplication

    import desktop_rag
    from desktop_rag.core.conversations import ConversationStore
    from desktop_rag.core.paths import app_paths

    print(f"desktop_rag from {Path(desktop_rag.__file__).parent}", flush=True)
    phases = set(args.phases.split(","))
    result: dict[str, Any] = {"phases": {}, "notes": {}, "extra": {}, "stalls": []}
    app = QApplication(sys.argv)
    meter = StallMeter()
    paths = app_paths()
    paths.data.mkdir(parents=True, exist_ok=True)
    conv_id = None
    if "stream" in phases:
        store = ConversationStore(paths.data / "conversations.sqlite3")
        conv_id = store.create("A long conversation")
        for m in conversation_messages(args.messages):
            store.add(conv_id, m)
        store.close()

    from desktop_rag.gui.main_window import MainWindow

    engine = None
    if args.fake_embedder:
        sys.path.insert(0, os.environ["PYTHONPATH"].split(os.pathsep)[0])
        from desktop_rag.core.engine import Engine
        from desktop_rag.core.settings import Settings
        from tests.fakes import FakeEmbedder

        engine = Engine(paths, Settings.load(paths.settings_file), embedder=FakeEmbedder())
    window = MainWindow(engine)
    window.show()
    detector = None
    if args.stall_stacks > 0:
        try:
            from desktop_rag.gui.stall import StallDetector
        except ImportError:
            result["notes"]["stall stacks"] = "this tree has no gui/stall.py"
        else:
            detector = StallDetector(threshold_ms=args.stall_stacks)
            detector.start()
    flags = {"ready": False, "indexed": 0, "answered": False}
    window.ready.connect(lambda: flags.__setitem__("ready", True))
    window.indexing_finished.connect(lambda s: flags.__setitem__("indexed", flags["indexed"] + 1))
    window.answer_finished.connect(lambda a: flags.__setitem__("answered", True))
    meter.begin("startup")
    if not wait_until(lambda: flags["ready"], 900):
        raise SystemExit("the models did not load")
    meter.end()

    def index(folder: Path) -> None:
        before = flags["indexed"]
        meter.begin("indexing (setup)")
        window.add_paths([str(folder)])
        if not wait_until(lambda: flags["indexed"] > before, args.index_timeout):
            raise SystemExit(f"indexing {folder} did not finish in {args.index_timeout} s")
        meter.end()
        settle(1.0)

    t = time.monotonic()
    if "citations" in phases:
        index(Path(args.pdf).parent)
    if "remove" in phases:
        index(Path(args.text_folder))
    result["extra"]["setup indexing s"] = round(time.monotonic() - t, 1)

    def measure(label: str, action: Callable[[], object], done: Callable[[], bool],
                timeout_s: float, tail_s: float = 0.5) -> bool:  # fmt: skip
        """Stalls from ``action()`` until ``done()`` and ``tail_s`` after, as ``label``."""
        settle(0.5)
        seen = len(detector.stalls) if detector is not None else 0
        meter.begin(label)
        t0 = time.monotonic()
        action()
        ok = wait_until(done, timeout_s)
        result["extra"][f"{label} s"] = round(time.monotonic() - t0, 2)
        settle(tail_s)
        meter.end()
        if detector is not None:
            for stall in detector.stalls[seen:]:
                result["stalls"].append(f"{label}: {stall.duration_ms or 0:.0f} ms at "
                                        + " <- ".join(_frame(f) for f in stall.stack[::-1][:3]))  # fmt: skip
        if not ok:
            result["notes"][label] = f"did not finish in {timeout_s:.0f} s"
        return ok

    chat = window.chat
    if "stream" in phases and conv_id is not None:
        window.conversations.refresh()
        settle(1.0)
        total = args.messages
        measure("open", lambda: window.conversations.open_requested.emit(conv_id),
                lambda: len(chat.messages) == total and not getattr(chat, "opening", False),
                60)  # fmt: skip
        chat.input.setPlainText(args.question)
        measure("stream", chat.send, lambda: bool(flags["answered"]), args.answer_timeout)
        result["extra"]["messages after the answer"] = len(chat.messages)

    if "citations" in phases:
        pdf = Path(args.pdf)
        sources = citation_sources(window.engine, pdf, args.clicks)
        viewer = window.sources.viewer
        window.sources.set_sources(sources)  # as an answer arriving does
        settle(3.0)  # the user reads the answer (the new tree starts its drawing worker)
        latencies: list[float] = []
        errors: list[str] = []

        def clicks() -> None:
            for s in sources:
                t0 = time.perf_counter()
                chat.citation_clicked.emit(sources, s["n"])
                page = s["page"]

                def drawn(page: int = page) -> bool:
                    err = getattr(viewer, "error", None)
                    return viewer.page == page and (getattr(viewer, "rendered", True) or bool(err))

                if not wait_until(drawn, 60):
                    errors.append(f"page {page} not drawn in 60 s")
                elif getattr(viewer, "error", None):
                    errors.append(f"page {page}: {viewer.error}")
                latencies.append((time.perf_counter() - t0) * 1000)
                # the user looks at the page before the next click: the event loop runs (where a
                # click draws on the GUI thread, back-to-back clicks would add up to one stall)
                settle(0.3)

        measure("citations", clicks, lambda: True, 1)
        result["extra"]["citation click-to-page ms (median, max)"] = (
            [round(statistics.median(latencies), 1), round(max(latencies), 1)] if latencies else []
        )
        result["extra"]["pages clicked"] = len(sources)
        if errors:
            result["notes"]["citations"] = "; ".join(errors[:3])

    if "remove" in phases:
        _remove_phase(window, Path(args.text_folder), measure, result)

    for label, gaps in meter.gaps.items():
        result["phases"][label] = summary(gaps)
    if detector is not None:
        detector.stop()
    window.shutdown()
    print(RESULT + json.dumps(result), flush=True)
    app.processEvents()
    os._exit(0)  # the window's teardown is not measured here (the close phase is)


def _frame(entry: str) -> str:
    """One ``traceback.format_stack`` entry as ``file:line func: code``."""
    head, _, code = entry.strip().partition("\n")
    parts = head.replace('"', "").split(", ")
    where = Path(parts[0].removeprefix("File ")).name if parts else "?"
    line = parts[1].removeprefix("line ") if len(parts) > 1 else "?"
    func = parts[2].removeprefix("in ") if len(parts) > 2 else "?"
    return f"{where}:{line} {func}: {code.strip()[:70]}"


def _remove_phase(window: Any, folder: Path, measure: Callable[..., bool],
                  result: dict[str, Any]) -> None:  # fmt: skip
    """Select the text folder's collection, click Remove, answer Yes; wait until it is gone."""
    from PySide6.QtWidgets import QMessageBox

    import desktop_rag.gui.library_panel as library_panel

    library = window.library
    model = library.collections_model
    root = str(folder.resolve())
    row = next((i for i, c in enumerate(model.items) if str(Path(c.root).resolve()) == root), None)
    if row is None:
        result["notes"]["remove"] = f"no collection for {root}"
        return
    collection = model.items[row]
    result["extra"]["chunks removed"] = getattr(collection, "chunks", None)
    library.collections_view.setCurrentIndex(model.index(row))
    yes = QMessageBox.StandardButton.Yes
    library_panel.QMessageBox.question = staticmethod(lambda *a, **k: yes)  # type: ignore[method-assign]

    def gone() -> bool:
        still = any(c.id == collection.id for c in model.items)
        return not still and getattr(library, "_removing", None) is None

    measure("remove", library.remove_btn.click, gone, 300)


def run_close_child(args: argparse.Namespace) -> None:
    """In a child: the real app indexing ``args.close_child``, closed ~2 s after the indexing
    started. Prints a ``RESULT`` line when the event loop ends (close to loop end, the stalls
    meanwhile: printed then, as the app may end the process with ``os._exit`` right after) and
    ``returned T`` if ``run()`` returns; exits with the app's exit code."""
    from PySide6.QtCore import QCoreApplication, QTimer

    import desktop_rag.gui.app as gui_app

    made = gui_app._create_window
    state: dict[str, Any] = {}

    def create() -> Any:
        w = made()
        meter = StallMeter()
        app = QCoreApplication.instance()
        assert app is not None

        def loop_ends() -> None:
            end = time.monotonic()
            meter.end()
            closed = state.get("close")
            out = {"close_to_loop_end_s": None if closed is None else end - closed,
                   "indexing_when_closed": state.get("indexing_when_closed"),
                   "stalls": summary(meter.gaps.get("close", []))}  # fmt: skip
            print(RESULT + json.dumps(out), flush=True)

        app.aboutToQuit.connect(loop_ends)

        def close() -> None:
            state["indexing_when_closed"] = w.library.worker is not None
            state["close"] = time.monotonic()
            print(f"closing {state['close']}", flush=True)
            meter.begin("close")
            w.close()

        def start() -> None:
            w.add_paths([args.close_child])
            QTimer.singleShot(int(args.close_after * 1000), close)

        w.ready.connect(start)
        return w

    gui_app._create_window = create
    code = gui_app.run()
    print(f"returned {time.monotonic()}", flush=True)
    sys.exit(code)


# -- in the parent ---------------------------------------------------------------------------
def child_env(tree: Path, cache: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(tree),
               DESKTOP_RAG_HOME=str(home), DESKTOP_RAG_ONNX_CACHE=str(cache / "onnx"),
               DESKTOP_RAG_GGUF_CACHE=str(cache / "gguf"))  # fmt: skip
    env.pop("DESKTOP_RAG_DEBUG", None)
    return env


def run_child(cmd: list[str], env: dict[str, str], timeout_s: float,
              log: Path) -> tuple[int | None, dict[str, Any] | None, str, float]:  # fmt: skip
    """Run ``cmd``; returns (exit code or None if killed, its RESULT JSON, output tail, monotonic
    time it ended). Its output is kept in ``log``."""
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        ended = time.monotonic()
    text = log.read_text(encoding="utf-8", errors="replace")
    found = None
    for line in text.splitlines():
        if line.startswith(RESULT):
            found = json.loads(line[len(RESULT) :])
    return code, found, text[-2500:], ended


def measure_tree(name: str, tree: Path, args: argparse.Namespace, work: Path,
                 data: dict[str, Path]) -> dict[str, Any]:  # fmt: skip
    """All phases asked for, on ``tree``: one child for stream/citations/remove, one for close."""
    out: dict[str, Any] = {"phases": {}, "notes": {}, "extra": {}, "close": None}
    gui = [p for p in args.phase_list if p != "close"]
    script = str(Path(__file__).resolve())
    if gui:
        cmd = [sys.executable, script, "--child-tree", "--phases", ",".join(gui),
               "--pdf", str(data.get("pdf", "")), "--text-folder", str(data.get("text", "")),
               "--messages", str(args.messages), "--clicks", str(args.clicks),
               "--question", args.question, "--index-timeout", str(args.index_timeout),
               "--answer-timeout", str(args.answer_timeout),
               "--stall-stacks", str(args.stall_stacks)]  # fmt: skip
        if args.fake_embedder:
            cmd.append("--fake-embedder")
        home = Path(tempfile.mkdtemp(prefix=f"home-{name}-", dir=work))
        print(f"[{name}] phases {','.join(gui)} (log {work / f'{name}-gui.log'})", flush=True)
        t = time.monotonic()
        code, res, tail, _ = run_child(cmd, child_env(tree, args.cache, home),
                                       args.index_timeout * 2 + args.answer_timeout + 900,
                                       work / f"{name}-gui.log")  # fmt: skip
        _keep_logs(home, work / f"{name}-gui-app-logs")
        print(f"[{name}] done in {time.monotonic() - t:.0f} s, exit {code}", flush=True)
        if res is None:
            reason = _reason(tail) or f"exit {code}"
            out["failed"] = reason
            print(f"[{name}] no result: {reason}\n{tail}", flush=True)
        else:
            out.update(res)
    if "close" in args.phase_list:
        home = Path(tempfile.mkdtemp(prefix=f"home-{name}-close-", dir=work))
        cmd = [sys.executable, script, "--close-child", str(args.docs),
               "--close-after", str(args.close_after)]  # fmt: skip
        print(f"[{name}] close while indexing {args.docs}", flush=True)
        code, res, tail, ended = run_child(cmd, child_env(tree, args.cache, home),
                                           args.close_timeout, work / f"{name}-close.log")  # fmt: skip
        _keep_logs(home, work / f"{name}-close-app-logs")
        marks = {ln.split()[0]: float(ln.split()[1]) for ln in tail.splitlines()
                 if ln.startswith(("closing ", "returned ")) and len(ln.split()) == 2}  # fmt: skip
        closed = marks.get("closing")
        out["close"] = {"code": code, "result": res, "tail": None if res else tail,
                        "close_to_exit_s": None if closed is None else ended - closed,
                        "run_returned": "returned" in marks}  # fmt: skip
        if code is None:
            out["close"]["why"] = f"killed after {args.close_timeout:.0f} s (did not exit)"
        elif res is None:
            out["close"]["why"] = _reason(tail) or f"exit {code}, no result"
    return out


def _keep_logs(home: Path, to: Path) -> None:
    """Keep the app's log folder of a child's data folder in ``to``, then remove the folder."""
    logs = home / "logs"
    if logs.is_dir():
        shutil.copytree(logs, to, dirs_exist_ok=True)
    shutil.rmtree(home, ignore_errors=True)


def _reason(tail: str) -> str:
    """The last error line of a child's output (an exception's message)."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln or ln.startswith("SystemExit"):
            return ln[:160]
    return lines[-1][:160] if lines else ""


def row_titles(args: argparse.Namespace) -> list[tuple[str | None, str, str]]:
    """(phase asked for, label, title) of the table's rows, sized as this run's data."""
    return [("stream", "open", f"open a {args.messages}-message conversation"),
            ("stream", "stream", f"stream an answer into the {args.messages} messages"),
            ("citations", "citations", f"{args.clicks} citation clicks, {args.pages}-page PDF"),
            ("remove", "remove", f"remove a {args.chunks}-chunk collection"),
            ("close", "close", "close while indexing"),
            (None, "indexing (setup)", "indexing the setup data (info)")]  # fmt: skip


def _cell(res: dict[str, Any] | None, label: str, key: str) -> str:
    if res is None:
        return "—"
    if label == "close":
        close = res.get("close")
        if not close:
            return "—"
        stalls = (close.get("result") or {}).get("stalls")
        return f"{stalls[key]:.0f}" if stalls and stalls["ticks"] else "n/a"
    ph = res.get("phases", {}).get(label)
    if ph is None:
        return "n/a"
    note = res.get("notes", {}).get(label)
    return f"{ph[key]:.0f}" + ("*" if note else "")


def _close_cell(res: dict[str, Any] | None) -> str:
    close = (res or {}).get("close")
    if not close:
        return "—"
    if close.get("code") is None:
        return close.get("why", "killed")
    r = close.get("result") or {}
    s = r.get("close_to_loop_end_s")
    return f"{s:.2f} s / {close['code']}" if s is not None else f"n/a / {close['code']}"


def print_table(before: dict[str, Any] | None, after: dict[str, Any],
                args: argparse.Namespace) -> None:  # fmt: skip
    rows = [("phase", f"before ({args.before}) max ms", "after max ms", "after p99", "after p50",
             "close s / exit (before → after)")]  # fmt: skip
    for phase, label, title in row_titles(args):
        if phase is not None and phase not in args.phase_list:
            continue
        if phase is None and not ({"citations", "remove"} & set(args.phase_list)):
            continue
        close = ""
        if label == "close":
            close = f"{_close_cell(before)} → {_close_cell(after)}"
        rows.append((f"{label}: {title}", _cell(before, label, "max"), _cell(after, label, "max"),
                     _cell(after, label, "p99"), _cell(after, label, "p50"), close))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print(f"goal: longest stall <= {GOAL_STALL_MS:.0f} ms per phase; closed within "
          f"{GOAL_CLOSE_S:.0f} s with exit 0.  * = see the notes")  # fmt: skip
    for name, res in (("before", before), ("after", after)):
        if res is None:
            continue
        if res.get("failed"):
            print(f"{name}: phases 1-3 n/a: {res['failed']}")
        for label, note in res.get("notes", {}).items():
            print(f"{name}: {label}: {note}")
        for key, value in res.get("extra", {}).items():
            print(f"{name}: {key}: {value}")
        for stall in res.get("stalls", []):
            print(f"{name}: stall {stall}")
        close = res.get("close")
        if close:
            r = close.get("result") or {}
            print(f"{name}: close: to the loop's end {_fmt(r.get('close_to_loop_end_s'))} s, "
                  f"to the process exit {_fmt(close.get('close_to_exit_s'))} s, exit code "
                  f"{close.get('code')}, indexing when closed: {r.get('indexing_when_closed')}, "
                  f"run() returned: {close.get('run_returned')}"
                  + (f" ({close['why']})" if close.get("why") else ""))  # fmt: skip


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("docs", type=Path, nargs="?", default=DEFAULT,
                    help="filings (PDFs) for the 1,000-page PDF and the close phase")  # fmt: skip
    ap.add_argument("--before", default="3903a33", help="git ref measured as 'before' (none: skip)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"a subset of {','.join(PHASES)}")
    ap.add_argument("--quick", action="store_true", help="a smoke run: small data, short waits")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "drag-gui-bench",
                    help="the generated PDF and text folder, the ONNX/GGUF caches")  # fmt: skip
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--fake-embedder", action="store_true", help="index with the tests' fake")
    ap.add_argument("--stall-stacks", type=float, default=0, metavar="MS",
                    help="also name the line of each stall over MS (gui/stall.py, if the tree has it)")  # fmt: skip
    ap.add_argument("--messages", type=int, default=60)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument("--chunks", type=int, default=5000, help="chunks of the removed collection")
    ap.add_argument("--close-after", type=float, default=2.0, help="s after indexing starts")
    ap.add_argument("--index-timeout", type=float, default=1800)
    ap.add_argument("--answer-timeout", type=float, default=600)
    ap.add_argument("--close-timeout", type=float, default=600)
    # internal: the children
    ap.add_argument("--child-tree", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--close-child", help=argparse.SUPPRESS)
    ap.add_argument("--pdf", help=argparse.SUPPRESS)
    ap.add_argument("--text-folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_tree:
        run_tree(args)
        return
    if args.close_child:
        run_close_child(args)
        return
    if args.quick:
        args.pages, args.clicks, args.chunks = min(args.pages, 80), min(args.clicks, 5), 600
        args.index_timeout, args.answer_timeout = min(args.index_timeout, 600), 300
        args.close_timeout = min(args.close_timeout, 240)
    args.phase_list = [p for p in PHASES if p in args.phases.split(",")]
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown or not args.phase_list:
        ap.error(f"--phases: unknown {sorted(unknown)}; choose from {','.join(PHASES)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    data: dict[str, Path] = {}
    if "citations" in args.phase_list:
        t = time.monotonic()
        data["pdf"] = build_pdf(args.docs, args.pages,
                                args.cache / f"pdf-{args.pages}" / f"filings-{args.pages}p.pdf")  # fmt: skip
        print(f"PDF: {data['pdf']} ({time.monotonic() - t:.1f} s)", flush=True)
    if "remove" in args.phase_list:
        files = max(1, args.chunks // 100)
        data["text"] = make_text_folder(args.cache / f"text-{files}x100", files, 100)
    work = Path(tempfile.mkdtemp(prefix="drag-gui-bench-run-"))
    worktree: Path | None = None
    before: dict[str, Any] | None = None
    try:
        if args.before.lower() != "none":
            worktree = work / "before-tree"
            made = subprocess.run(["git", "worktree", "add", "--detach", str(worktree),
                                   args.before], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
            if made.returncode != 0:
                print(f"before: n/a: git worktree add failed: {made.stderr.strip()}")
                worktree = None
            else:
                before = measure_tree("before", worktree, args, work, data)
        after = measure_tree("after", ROOT, args, work, data)
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                           capture_output=True)  # fmt: skip
    print()
    print_table(before, after, args)
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
