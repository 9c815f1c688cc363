"""The desktop app driven through its real window with the real engine and models (pytest-qt)."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UserError
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from desktop_rag.core.types import Answer
from desktop_rag.gui.main_window import MainWindow
from desktop_rag.gui.tasks import Notifier, Pool, TaskRunner
from tests.conftest import DOCUGAMI, requires_docugami

# Tests using a real model are marked slow by conftest (by their fixtures). Qt's offscreen
# platform warns that it "does not support propagateSizeHints()" whenever a shown window's size
# constraints change: that is the platform plugin, not the app.
pytestmark = [
    pytest.mark.gui,
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

QUESTION = "How many tonnes of apples did the orchard yield in 2022?"


#: How long threads get to end after the window shut down (the engine joins its own).
THREAD_GRACE_S = 5.0


def _window(qtbot, embedder: Embedder, *, saved_settings: bool = False) -> MainWindow:  # type: ignore[no-untyped-def]
    """A shown window over a real engine, its models loaded. The threads alive before it are
    remembered on it (``_threads_before``) for :func:`_assert_no_threads_left`.

    ``saved_settings``: the engine reads the settings file as the app does at its start
    (defaults where there is none), instead of being given the tests' settings."""
    threads_before = set(threading.enumerate())
    settings = None if saved_settings else Settings(temperature=0.0, max_answer_tokens=96)
    engine = Engine(app_paths(), settings, embedder=embedder)
    w = MainWindow(engine)
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.ready, timeout=240_000):
            pass
    except qtbot.TimeoutError:
        w.shutdown(timeout_ms=60_000)
        pytest.fail(f"the models did not load: {w.models.status_label.text()!r}, "
                    f"{w.statusBar().currentMessage()!r}")  # fmt: skip
    w._threads_before = threads_before  # type: ignore[attr-defined]
    return w


def _assert_no_threads_left(w: MainWindow) -> None:
    """Shut the window down, then check for real that nothing it started still runs: every
    worker of its task runner finished and its pools are idle (waited for, with a timeout), the
    folder watcher stopped, and no non-daemon Python thread started since the window was made
    is alive."""
    assert w.shutdown(timeout_ms=60_000), "a worker thread was left running"
    assert w.runner.idle(), "a worker thread was left running"
    assert w.library.watcher is None or w.library.watcher._observer is None, (
        "the folder watcher is still running"
    )
    before: set[threading.Thread] = w._threads_before  # type: ignore[attr-defined]
    started = [t for t in threading.enumerate() if t not in before and not t.daemon]
    deadline = time.monotonic() + THREAD_GRACE_S
    for t in started:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in started if t.is_alive()]
    assert not alive, f"threads left running after shutdown: {alive}"


@pytest.fixture
def window(qtbot, embedder: Embedder) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    w = _window(qtbot, embedder)
    yield w
    _assert_no_threads_left(w)


def _drop(w: MainWindow, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(400, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)  # fmt: skip
    w.dropEvent(event)


def _ask(qtbot, w: MainWindow, question: str) -> Answer | None:  # type: ignore[no-untyped-def]
    w.chat.input.setPlainText(question)
    with qtbot.waitSignal(w.answer_finished, timeout=120_000) as blocker:
        qtbot.keyClick(w.chat.input, Qt.Key.Key_Return)
    return blocker.args[0]  # type: ignore[no-any-return]


def test_drop_index_ask_click_citation_and_view_page(
    qtbot, window: MainWindow, corpus: Path
) -> None:  # type: ignore[no-untyped-def]
    w = window
    assert w.center.currentWidget() is w.empty_state
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000) as blocker:
        _drop(w, corpus)
    summary = blocker.args[0]
    assert summary is not None and summary.indexed == 6
    assert w.center.currentWidget() is w.chat_page
    assert [c.root for c in w.library.collections_model.items] == [str(corpus)]
    # A broken file shows up in the error list with its reason.
    problems = {Path(f.path).name: f.reason for f in w.library.problems_model.items}
    assert "broken.pdf" in problems and "PDF" in problems["broken.pdf"]
    assert problems["image.xyz"] == "unsupported file type .xyz"

    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.text
    assert w.chat.messages[-1].role == "assistant" and w.chat.messages[-1].text == answer.text
    sources = w.sources.model.items
    assert sources[0]["file"].endswith("orchard.pdf") and sources[0]["page"] == 2
    assert "cite:1:1" in w.chat.transcript.toHtml(), "source numbers are links"

    # Click citation [1] of the answer (message 1): the viewer shows page 2 with a highlight.
    w.chat.transcript.anchorClicked.emit(QUrl("cite:1:1"))
    viewer = w.sources.viewer
    assert viewer.path is not None and viewer.path.name == "orchard.pdf"
    qtbot.waitUntil(lambda: viewer.rendered, timeout=30_000)  # drawn off the GUI thread
    assert viewer.page == 2 and viewer.highlight_rects
    assert not viewer.image.pixmap().isNull()
    assert "page 2 of 3" in viewer.title.text()
    qtbot.mouseClick(viewer.next_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: viewer.rendered, timeout=30_000)
    assert viewer.page == 3 and not viewer.highlight_rects

    # A text source opens with its passage highlighted in the text.
    md = next(s for s in w.engine.search("When do swarms leave the hive?", 3).hits)
    w.sources.open_source(
        {"file": md.path, "page": md.page, "text": md.text, "start": md.start, "end": md.end}
    )
    qtbot.waitUntil(lambda: viewer.rendered, timeout=30_000)
    assert viewer.stack.currentWidget() is viewer.text
    assert viewer.highlight_rects == [(md.start, md.end)]


def test_summarise_a_folder_and_an_answers_sources(qtbot, window: MainWindow, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        _drop(w, corpus)
    w.library.collections_view.setCurrentIndex(w.library.collections_model.index(0))
    qtbot.mouseClick(w.library.summarize_btn, Qt.MouseButton.LeftButton)
    assert w.chat.busy and w.chat.send_btn.isEnabled(), "the chat stays free while it runs"
    # A question asked meanwhile is answered (the model serves it ahead of the summary).
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and w.chat.messages[1].text == answer.text
    summary_q = f"Summarise the folder {corpus.name}"
    qtbot.waitUntil(lambda: any(m.text == summary_q for m in w.chat.messages), timeout=300_000)
    texts = [m.text for m in w.chat.messages]
    reply = w.chat.messages[texts.index(summary_q) + 1]
    assert texts.index(summary_q) >= 2, "the summary comes after the answer written meanwhile"
    assert reply.role == "assistant" and "[1]" in reply.text and reply.sources
    assert w.statusBar().currentMessage().startswith("Summary: ")
    assert not w.chat.busy and w.sources.summarize_all_btn.isEnabled()
    # The summary's sources, summarised in turn (the button under the source list).
    w.engine.settings.answer_style = "evidence"  # the extractive summary: no model, quick
    with qtbot.waitSignal(w.answer_finished, timeout=120_000) as blocker:
        qtbot.mouseClick(w.sources.summarize_all_btn, Qt.MouseButton.LeftButton)
    again = blocker.args[0]
    assert again is not None and w.chat.messages[-2].text == "Summarise the sources of this answer"
    files = {s["file"] for s in reply.sources}
    assert {c.hit.path for c in again.citations} <= files
    # A summary asked here lands here, even when the user has moved to a new chat meanwhile
    # (the summary's result can only arrive through the event loop, after new_chat).
    asked_in = w.conversations.conversation_id
    n_before = len(w.chat.messages)
    with qtbot.waitSignal(w.answer_finished, timeout=120_000):
        qtbot.mouseClick(w.sources.summarize_all_btn, Qt.MouseButton.LeftButton)
        w.chat.new_chat()
    assert w.chat.messages == [] and "saved to the conversation" in w.statusBar().currentMessage()
    with qtbot.waitSignal(w.chat.conversation_shown, timeout=30_000):
        qtbot.waitUntil(lambda: not w.conversations.pending, timeout=30_000)
        w.chat.open_conversation(asked_in)
    assert len(w.chat.messages) == n_before + 2, [m.text for m in w.chat.messages]
    assert w.chat.messages[-2].text == "Summarise the sources of this answer"
    assert w.chat.messages[-1].role == "assistant" and "[1]" in w.chat.messages[-1].text


@requires_docugami
def test_compare_two_filings_in_the_window(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = window
    folder = tmp_path / "filings"
    folder.mkdir()
    for name in ("2022 Q3 AAPL.pdf", "2023 Q3 AAPL.pdf"):
        shutil.copy(DOCUGAMI / name, folder / name)
    with qtbot.waitSignal(w.indexing_finished, timeout=300_000):
        _drop(w, folder)
    dialog = w.open_compare()
    qtbot.waitUntil(lambda: dialog.compare_btn.isEnabled(), timeout=30_000)
    dialog.choose(str(folder / "2022 Q3 AAPL.pdf"), str(folder / "2023 Q3 AAPL.pdf"))
    dialog.aspect.setText("revenue")
    with qtbot.waitSignal(dialog.finished_comparison, timeout=300_000) as blocker:
        qtbot.mouseClick(dialog.compare_btn, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result is not None and dialog.figures.rowCount() == len(result.figures_differ) > 0
    rows = [dialog.figures.item(r, 0).text() for r in range(dialog.figures.rowCount())]
    r = next(i for i, item in enumerate(rows) if item.endswith("Total net sales"))
    assert "82,959" in dialog.figures.item(r, 2).text()
    assert "81,797" in dialog.figures.item(r, 3).text()
    # Clicking the second report's figure opens its page in the viewer.
    dialog.figures.cellClicked.emit(r, 3)
    viewer = w.sources.viewer
    qtbot.waitUntil(lambda: viewer.rendered, timeout=30_000)
    assert viewer.path is not None and viewer.path.name == "2023 Q3 AAPL.pdf" and viewer.page == 4
    dialog.close()


def test_stop_generation_midway(qtbot, window: MainWindow, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        w.add_paths([str(corpus)])
    tokens: list[str] = []

    def on_item(item: object) -> None:
        if isinstance(item, str):
            tokens.append(item)
            if len(tokens) == 2:
                qtbot.keyClick(w.chat.input, Qt.Key.Key_Escape)

    def on_busy() -> None:  # the answer's worker started (send checks the index first)
        if w.chat.worker is not None:
            w.chat.worker.signals.yielded.connect(on_item)

    w.chat.busy_changed.connect(on_busy)
    w.chat.input.setPlainText("Describe the orchard, the harvest and the market in detail.")
    with qtbot.waitSignal(w.answer_finished, timeout=120_000):
        w.chat.send()
    assert w.chat.messages[-1].text.endswith("[stopped]")
    assert len(tokens) <= 4
    assert w.chat.send_btn.isEnabled() and not w.chat.stop_btn.isEnabled()


def test_conversation_survives_restart_and_exports(qtbot, embedder: Embedder, corpus: Path,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:  # fmt: skip
    w = _window(qtbot, embedder)
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        w.add_paths([str(corpus)])
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None
    _assert_no_threads_left(w)
    w.close()

    w2 = _window(qtbot, embedder)
    qtbot.waitUntil(lambda: not w2.conversations.pending, timeout=10_000)  # the list is read
    convs = w2.conversations.model.items
    assert len(convs) == 1 and convs[0].title == QUESTION
    with qtbot.waitSignal(w2.chat.conversation_shown, timeout=10_000):  # loaded off-thread
        w2.conversations.open_requested.emit(convs[0].id)  # a click on it in the list
    assert [m.role for m in w2.chat.messages] == ["user", "assistant"]
    assert w2.chat.messages[1].text == answer.text
    assert w2.sources.model.items[0]["file"].endswith("orchard.pdf")
    out = tmp_path / "chat.md"
    with qtbot.waitSignal(w2.conversations.exported, timeout=10_000):
        w2.conversations.export(str(out))
    md = out.read_text()
    assert f"**You:** {QUESTION}" in md and "orchard.pdf, page 2" in md
    _assert_no_threads_left(w2)


def test_watched_folder_reindexes_a_new_file(qtbot, window: MainWindow, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        w.add_paths([str(corpus)])
    with qtbot.waitSignal(w.indexing_finished, timeout=30_000) as blocker:
        (corpus / "ferry.md").write_text("# Ferry\n\nThe ferry to the island leaves at 07:40.\n")
    assert blocker.args[0] is not None and blocker.args[0].indexed == 1
    assert w.engine.search("When does the ferry leave?", 1).hits[0].file_name == "ferry.md"


def test_import_and_switch_gguf_model(qtbot, window: MainWindow, llm_path: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import shutil

    from PySide6.QtWidgets import QMessageBox

    w = window
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(a[2]))
    src = tmp_path / "imported.gguf"
    shutil.copyfile(llm_path, src)
    before = w.models.combo.count()
    w.models.import_model(str(src))
    qtbot.waitUntil(lambda: bool(shown), timeout=30_000)
    assert "Architecture: llama" in shown[0] and "Quantization: Q4_1" in shown[0]
    assert "Parameters: 135M" in shown[0] and "8,192 tokens" in shown[0]
    assert w.models.combo.count() == before + 1
    w.models.combo.setCurrentIndex(before)
    qtbot.waitUntil(
        lambda: w.models.status_label.text() == "Ready · local: imported", timeout=60_000
    )
    assert w.engine.llm.loaded and w.engine.llm.model_path.name == "imported.gguf"
    assert '"llm_model": "imported"' in w.engine.paths.settings_file.read_text()


def test_style_adapter_per_conversation(qtbot, window: MainWindow, corpus: Path,  # type: ignore[no-untyped-def]
                                        tmp_path: Path) -> None:  # fmt: skip
    from tests.test_adapters import make_lora

    w = window
    bar = w.style_bar
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        _drop(w, corpus)
    assert bar.combo.currentData() is None and not bar.slider.isEnabled()
    bar.import_adapter(str(make_lora(tmp_path / "house-style.gguf", scale=0.01)))
    qtbot.waitUntil(lambda: bar.combo.currentData() == "house-style", timeout=30_000)
    assert bar.slider.isEnabled()
    bar.slider.setValue(80)
    assert bar.value.text() == "0.80"
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.adapter == "house-style" and answer.adapter_scale == 0.8
    styled_chat = w.conversations.conversation_id
    assert styled_chat is not None
    # A new chat with no style answers with the base model alone...
    w.chat.new_chat()
    bar.combo.setCurrentIndex(0)
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.adapter is None
    # ...and reopening the first chat brings its style back.
    with qtbot.waitSignal(w.chat.conversation_shown, timeout=10_000):
        w.chat.open_conversation(styled_chat)
    assert bar.current_style() == ("house-style", 0.8)


def _settings_shown(dialog: object) -> tuple[int, float, int, int, bool]:
    """(context size, temperature, number of sources, CPU threads, OCR) as a settings dialog
    shows them."""
    from desktop_rag.gui.settings_dialog import SettingsDialog

    assert isinstance(dialog, SettingsDialog), f"the Settings dialog is not open: {dialog!r}"
    return (dialog.context.value(), round(dialog.temperature.value(), 2), dialog.top_k.value(),
            dialog.threads.value(), dialog.ocr.isChecked())  # fmt: skip


def _in_settings_dialog(qtbot, w: MainWindow, act) -> object:  # type: ignore[no-untyped-def]
    """Click Settings… in the window and run ``act(dialog)`` inside the modal dialog (which
    must click OK or Cancel); returns what ``act`` returned. A dialog that did not open, or
    whose ``act`` raised, is cancelled and the error raised here."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog

    outcome: list[object] = []
    tries = [0]

    def inside() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QDialog) and tries[0] < 200:  # not shown yet: look again
            tries[0] += 1
            QTimer.singleShot(50, inside)
            return
        try:
            outcome.append(act(dialog))
        except BaseException as exc:  # shown by the test, not lost in Qt's event loop
            outcome.append(exc)
            if isinstance(dialog, QDialog):
                dialog.reject()

    QTimer.singleShot(0, inside)
    w.models.settings_action.trigger()  # the toolbar's and the Models menu's Settings…
    assert outcome, "the Settings dialog did not open"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_settings_chosen_in_the_dialog_are_there_after_a_restart(qtbot, embedder: Embedder,  # type: ignore[no-untyped-def]
                                                                 llm_path: Path, gguf_cache: Path) -> None:  # fmt: skip
    """Settings… in the window, new values typed into the dialog, OK: the app's own save path
    writes them, and the app started again (a new engine reading its settings file, a new
    window) uses them and shows them in its dialog."""
    from PySide6.QtWidgets import QDialogButtonBox

    from desktop_rag.core.generate.llm import default_threads
    from desktop_rag.core.generate.llm_weights import weights_for_inference

    # The session's first load of the LLM converts and times its F16 copy (minutes on a busy
    # machine): done here, so the windows' start waits only for loading.
    weights_for_inference(llm_path, gguf_cache, default_threads())
    chosen = (2048, 0.7, 8, 1, False)
    w = _window(qtbot, embedder, saved_settings=True)
    assert w.engine.settings.ocr, "OCR is on by default"
    assert not w.engine.paths.settings_file.exists(), "a first start: no settings file yet"

    def choose(dialog: object) -> None:
        assert _settings_shown(dialog) != chosen
        d = dialog  # a SettingsDialog (checked above)
        d.context.setValue(chosen[0])  # type: ignore[attr-defined]
        d.temperature.setValue(chosen[1])  # type: ignore[attr-defined]
        d.top_k.setValue(chosen[2])  # type: ignore[attr-defined]
        d.threads.setValue(chosen[3])  # type: ignore[attr-defined]
        d.ocr.setChecked(chosen[4])  # type: ignore[attr-defined]
        ok = d.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)  # type: ignore[attr-defined]
        qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)

    try:
        _in_settings_dialog(qtbot, w, choose)
        # Written in the background; a new context size also reloads the model.
        qtbot.waitUntil(lambda: w.engine.paths.settings_file.exists() and w.runner.idle(),
                        timeout=120_000)  # fmt: skip
    except BaseException:
        w.shutdown(timeout_ms=60_000)  # the failure is the test's, not a left thread
        raise
    _assert_no_threads_left(w)
    w.close()

    w2 = _window(qtbot, embedder, saved_settings=True)  # the app started again
    s = w2.engine.settings
    assert (s.context_size, s.temperature, s.top_k, s.threads, s.ocr) == chosen

    def look(dialog: object) -> tuple[int, float, int, int, bool]:
        shown = _settings_shown(dialog)
        dialog.reject()  # type: ignore[attr-defined]
        return shown

    assert _in_settings_dialog(qtbot, w2, look) == chosen
    _assert_no_threads_left(w2)


# -- the task runner, the notifier and start-up errors (no models) ----------------------------
@pytest.fixture
def runner(qtbot) -> Iterator[TaskRunner]:  # type: ignore[no-untyped-def]
    """A task runner whose notifier writes to the status bar of a bare window."""
    from PySide6.QtWidgets import QMainWindow

    win = QMainWindow()
    qtbot.addWidget(win)
    r = TaskRunner(Notifier(win.statusBar(), win), win)
    yield r
    assert r.shutdown(timeout_ms=10_000), "a worker thread was left running"


def _fail_after_one_item(exc: Exception) -> Iterator[int]:
    yield 1
    raise exc


def test_notifier_shows_a_user_errors_message_and_hint(
    qtbot, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    dialogs: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: dialogs.append((title, text)))  # fmt: skip
    error = UserError("the model file is corrupt", hint="import it again")
    handled: list[BaseException] = []
    with qtbot.waitSignal(runner.notifier.shown, timeout=10_000) as blocker:
        worker = runner.submit(lambda cancel: _fail_after_one_item(error), "Importing the model",
                               Pool.MISC, dialog="Import GGUF model", on_error=handled.append)  # fmt: skip
    shown = "the model file is corrupt — Hint: import it again"
    assert blocker.args == [shown]
    assert runner.notifier.parent().statusBar().currentMessage() == shown  # type: ignore[attr-defined]
    assert dialogs == [("Import GGUF model", "the model file is corrupt\nHint: import it again")]
    qtbot.waitUntil(lambda: handled == [error], timeout=5000)  # the caller's handler ran too
    assert runner.idle(timeout_ms=5000) and worker.done.is_set()


def test_notifier_logs_a_bugs_traceback_and_names_the_log(
    qtbot, runner: TaskRunner, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.ERROR), qtbot.waitSignal(runner.notifier.shown, timeout=10_000) as blocker:  # fmt: skip
        runner.submit(lambda cancel: _fail_after_one_item(KeyError("page")), "Indexing", Pool.INDEX)
    text = blocker.args[0]
    assert text.startswith("Indexing failed: 'page' (details in ") and "\n" not in text
    record = next(r for r in caplog.records if r.name == "desktop_rag.gui.tasks")
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "_fail_after_one_item" in caplog.text, "the traceback is in the log"


def test_task_runner_idle_waits_for_its_threads_and_shutdown_joins_them(
    qtbot, runner: TaskRunner
) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()

    def blocked(cancel: object) -> str:
        release.wait(30)
        return "done"

    def until_cancelled(cancel) -> Iterator[int]:  # type: ignore[no-untyped-def]
        while not cancel.cancelled:
            time.sleep(0.01)
            yield 0

    first = runner.submit(blocked, "Waiting", Pool.MISC)
    assert not runner.idle(timeout_ms=100), "a thread is still running"
    release.set()
    assert runner.idle(timeout_ms=10_000) and first.done.is_set()
    cancelled: list[bool] = []
    runner.submit(until_cancelled, "Looping", Pool.LLM, on_cancel=lambda: cancelled.append(True))
    assert not runner.idle(timeout_ms=100)
    assert runner.shutdown(timeout_ms=10_000), "shutdown cancels and joins"
    assert all(pool.activeThreadCount() == 0 for pool in runner.pools.values())
    qtbot.wait(50)
    assert cancelled == [], "no callback runs after shutdown"
    with pytest.raises(RuntimeError):
        runner.submit(blocked, "Waiting", Pool.MISC)


def test_startup_errors_show_a_message_and_exit_1(
    qtbot, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    from desktop_rag.gui import app

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: shown.append(text))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored even if run() set it
    # The index database cannot be opened: a real engine fails to build.
    app_paths().ensure().index_db.mkdir(parents=True)
    assert app.run() == 1
    assert shown[0].startswith("Unexpected error (OperationalError: ") and "details in " in shown[0]
    # A user error shows its message and hint.

    def broken() -> MainWindow:
        raise UserError("the index was built with another embedding model", hint="re-index")

    monkeypatch.setattr(app, "_create_window", broken)
    assert app.run() == 1
    assert shown[1] == "the index was built with another embedding model\nHint: re-index"


@pytest.mark.slow
def test_a_passage_on_a_scan_is_highlighted_where_ocr_read_it(
    qtbot, fake_engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A scanned page has no text layer to search: the viewer highlights the boxes OCR stored
    for the cited characters, on the cited page only; an image file opens the same way."""
    from desktop_rag.gui.sources_panel import SourcesPanel
    from tests.conftest import make_scan

    folder = tmp_path / "scans"
    folder.mkdir()
    lines = "The ferry timetable changes in May.\n\nThe harbour dues for 2024 are 31 euros a tonne."
    make_scan(folder / "dues.pdf", ["Minutes of the harbour board, cover page", lines])
    make_scan(folder / "notice.png", [lines])
    assert fake_engine.index_all([folder]).ocr_pages == 3
    from PySide6.QtWidgets import QMainWindow

    win = QMainWindow()
    qtbot.addWidget(win)
    runner = TaskRunner(Notifier(win.statusBar(), win), win)
    panel = SourcesPanel(fake_engine, runner)
    qtbot.addWidget(panel)
    for name, page in (("notice.png", 1), ("dues.pdf", 2)):
        hit = next(h for h in fake_engine.search("harbour dues euros a tonne", 5).hits
                   if h.file_name == name)  # fmt: skip
        assert hit.page == page
        at = hit.text.index("harbour")
        source = {"file": hit.path, "page": hit.page, "text": hit.text,
                  "start": hit.start + at, "end": hit.start + at + 20}  # fmt: skip
        panel.open_source(source)
        viewer = panel.viewer
        qtbot.waitUntil(lambda: panel.viewer.rendered, timeout=30_000)
        assert viewer.page == page and viewer.highlight_rects, name
        # only the line holding "harbour dues" (typeset below the ferry line), not the page
        assert all(y0 > 60 and y1 - y0 < 30 for _, y0, _, y1 in viewer.highlight_rects), name
        assert not viewer.image.pixmap().isNull()
    panel.viewer.go_to(1)
    qtbot.waitUntil(lambda: panel.viewer.rendered, timeout=30_000)
    assert panel.viewer.page == 1 and not panel.viewer.highlight_rects
    assert runner.shutdown(timeout_ms=30_000)
    panel.shutdown()


def test_answer_through_an_inference_server_and_serve_the_api(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, corpus: Path, llm_path: Path
) -> None:
    """Models > Add inference server… adds a real llama_cpp.server; choosing it in the Model
    list answers through it (no restart), the status bar names it; a server that goes away
    gives a message with the evidence. Models > Start local API serves our API from the same
    engine, the address in the status bar, a real client gets sources; Stop ends it."""
    import json
    import urllib.request

    from tests.test_server_backend import KEY, free_port, start_llama_server, stop

    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        _drop(w, corpus)
    port = free_port()
    proc = start_llama_server(llm_path, port)
    try:
        w.models.add_server({"name": "team", "url": f"http://127.0.0.1:{port}", "model": "smol",
                             "api_key": KEY, "timeout_s": 30.0, "context": 4096})  # fmt: skip
        qtbot.waitUntil(lambda: w.models.status_label.text().startswith("Ready · server: team"),
                        timeout=60_000)  # fmt: skip
        assert "server 127.0.0.1" in w.models.combo.currentText()
        answer = _ask(qtbot, w, QUESTION)
        assert answer is not None and answer.backend is not None
        assert answer.backend.startswith("server: team") and answer.error is None
        assert answer.citations[0].hit.page == 2
    finally:
        stop(proc)
    answer = _ask(qtbot, w, QUESTION)  # the server is gone: the evidence, and why
    assert answer is not None and answer.error is not None and "cannot be reached" in answer.error
    assert answer.evidence
    # Back to the bundled model without a restart.
    combo = w.models.combo
    bundled = next(i for i in range(combo.count()) if combo.itemData(i) is None)
    combo.setCurrentIndex(bundled)
    qtbot.waitUntil(lambda: w.models.status_label.text().startswith("Ready · local: "),
                    timeout=60_000)  # fmt: skip
    # Our own API from the menu.
    w.api.toggle_action.trigger()
    qtbot.waitUntil(lambda: w.api.address is not None, timeout=30_000)
    assert w.api.status_label.text() == f"API: {w.api.address}"
    assert w.api.toggle_action.text() == "Stop local API"
    assert w.api.server is not None
    body = json.dumps({"model": "desktop-rag", "include_sources": True,
                       "messages": [{"role": "user", "content": QUESTION}]}).encode()  # fmt: skip
    req = urllib.request.Request(f"{w.api.address}/v1/chat/completions", data=body, headers={
        "Authorization": f"Bearer {w.api.server.token}", "Content-Type": "application/json"})  # fmt: skip
    replies: list[dict[str, object]] = []

    def call() -> None:  # off the GUI thread: the window keeps serving its event loop
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # /health: 503 while the API warms the engine
            try:
                with urllib.request.urlopen(f"{w.api.address}/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(req, timeout=120) as resp:
            replies.append(json.loads(resp.read()))

    client = threading.Thread(target=call)
    client.start()
    qtbot.waitUntil(lambda: bool(replies) or not client.is_alive(), timeout=120_000)
    client.join(5)
    assert replies, "the API did not answer"
    sources = replies[0]["sources"]
    assert isinstance(sources, list) and sources
    assert Path(str(sources[0]["file"])).name == "orchard.pdf"
    w.api.toggle_action.trigger()
    qtbot.waitUntil(lambda: w.api.address is None and w.api.toggle_action.isEnabled(),
                    timeout=30_000)  # fmt: skip
    assert w.api.toggle_action.text() == "Start local API" and w.api.status_label.isHidden()
    _assert_no_threads_left(w)
