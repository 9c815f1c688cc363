"""The desktop app driven through its real window with the real engine and models (pytest-qt)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from desktop_rag.core.types import Answer
from desktop_rag.gui.main_window import MainWindow

pytestmark = [pytest.mark.gui, pytest.mark.slow]

QUESTION = "How many tonnes of apples did the orchard yield in 2022?"


def _window(qtbot, embedder: Embedder) -> MainWindow:  # type: ignore[no-untyped-def]
    engine = Engine(app_paths(), Settings(temperature=0.0, max_answer_tokens=96), embedder=embedder)
    w = MainWindow(engine)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.ready, timeout=120_000):
        pass
    return w


def _assert_no_threads_left(w: MainWindow) -> None:
    w.shutdown()
    for pool in (w.index_pool, w.llm_pool, w.misc_pool):
        assert pool.activeThreadCount() == 0, "a worker thread was left running"
    assert w.watcher is None or w.watcher._observer is None, "the folder watcher is still running"


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
    w.input.setPlainText(question)
    with qtbot.waitSignal(w.answer_finished, timeout=120_000) as blocker:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
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
    assert [c.root for c in w.collections_model.items] == [str(corpus)]
    # A broken file shows up in the error list with its reason.
    problems = {Path(f.path).name: f.reason for f in w.problems_model.items}
    assert "broken.pdf" in problems and "PDF" in problems["broken.pdf"]
    assert problems["image.xyz"] == "unsupported file type .xyz"

    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.text
    assert w.messages[-1].role == "assistant" and w.messages[-1].text == answer.text
    sources = w.sources_model.items
    assert sources[0]["file"].endswith("orchard.pdf") and sources[0]["page"] == 2
    assert "cite:1:1" in w.transcript.toHtml(), "source numbers are links"

    # Click citation [1] of the answer (message 1): the viewer shows page 2 with a highlight.
    w.transcript.anchorClicked.emit(QUrl("cite:1:1"))
    assert w.viewer.path is not None and w.viewer.path.name == "orchard.pdf"
    assert w.viewer.page == 2 and w.viewer.highlight_rects
    assert not w.viewer.image.pixmap().isNull()
    assert "page 2 of 3" in w.viewer.title.text()
    qtbot.mouseClick(w.viewer.next_btn, Qt.MouseButton.LeftButton)
    assert w.viewer.page == 3 and not w.viewer.highlight_rects

    # A text source opens with its passage highlighted in the text.
    md = next(s for s in w.engine.search("When do swarms leave the hive?", 3).hits)
    w.open_source(
        {"file": md.path, "page": md.page, "text": md.text, "start": md.start, "end": md.end}
    )
    assert w.viewer.stack.currentWidget() is w.viewer.text
    assert w.viewer.highlight_rects == [(md.start, md.end)]


def test_stop_generation_midway(qtbot, window: MainWindow, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        w.add_paths([str(corpus)])
    tokens: list[str] = []

    def on_item(item: object) -> None:
        if isinstance(item, str):
            tokens.append(item)
            if len(tokens) == 2:
                qtbot.keyClick(w.input, Qt.Key.Key_Escape)

    w.input.setPlainText("Describe the orchard, the harvest and the market in detail.")
    with qtbot.waitSignal(w.answer_finished, timeout=120_000):
        w.send()
        assert w._answer_worker is not None
        w._answer_worker.signals.yielded.connect(on_item)
    assert w.messages[-1].text.endswith("[stopped]")
    assert len(tokens) <= 4
    assert w.send_btn.isEnabled() and not w.stop_btn.isEnabled()


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
    convs = w2.conversations_model.items
    assert len(convs) == 1 and convs[0].title == QUESTION
    w2.open_conversation(convs[0].id)
    assert [m.role for m in w2.messages] == ["user", "assistant"]
    assert w2.messages[1].text == answer.text
    assert w2.sources_model.items[0]["file"].endswith("orchard.pdf")
    out = tmp_path / "chat.md"
    w2.export_conversation(str(out))
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


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, desktop_rag.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'desktop_rag.core.'): importlib.import_module(m.name)\n"
        "import desktop_rag.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'PyQt'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_and_switch_gguf_model(qtbot, window: MainWindow, llm_path: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import shutil

    from PySide6.QtWidgets import QMessageBox

    w = window
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(a[2]))
    src = tmp_path / "imported.gguf"
    shutil.copyfile(llm_path, src)
    before = w.model_combo.count()
    w.import_model(str(src))
    qtbot.waitUntil(lambda: bool(shown), timeout=30_000)
    assert "Architecture: llama" in shown[0] and "Quantization: Q4_1" in shown[0]
    assert "Parameters: 135M" in shown[0] and "8,192 tokens" in shown[0]
    assert w.model_combo.count() == before + 1
    w.model_combo.setCurrentIndex(before)
    qtbot.waitUntil(lambda: w.status_label.text() == "Ready · imported", timeout=60_000)
    assert w.engine.llm.loaded and w.engine.llm.model_path.name == "imported.gguf"
    assert '"llm_model": "imported"' in w.engine.paths.settings_file.read_text()


def test_style_adapter_per_conversation(qtbot, window: MainWindow, corpus: Path,  # type: ignore[no-untyped-def]
                                        tmp_path: Path) -> None:  # fmt: skip
    from tests.test_adapters import make_lora

    w = window
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000):
        _drop(w, corpus)
    assert w.style_combo.currentData() is None and not w.style_slider.isEnabled()
    w.import_adapter(str(make_lora(tmp_path / "house-style.gguf", scale=0.01)))
    qtbot.waitUntil(lambda: w.style_combo.currentData() == "house-style", timeout=30_000)
    assert w.style_slider.isEnabled()
    w.style_slider.setValue(80)
    assert w.style_value.text() == "0.80"
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.adapter == "house-style" and answer.adapter_scale == 0.8
    styled_chat = w.conversation_id
    assert styled_chat is not None
    # A new chat with no style answers with the base model alone...
    w.new_chat()
    w.style_combo.setCurrentIndex(0)
    answer = _ask(qtbot, w, QUESTION)
    assert answer is not None and answer.adapter is None
    # ...and reopening the first chat brings its style back.
    w.open_conversation(styled_chat)
    assert w.current_style() == ("house-style", 0.8)


def test_settings_dialog_persists(qtbot, home: Path) -> None:  # type: ignore[no-untyped-def]
    from desktop_rag.gui.settings_dialog import SettingsDialog

    settings = Settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.context.setValue(2048)
    dialog.temperature.setValue(0.7)
    dialog.top_k.setValue(8)
    dialog.threads.setValue(1)
    dialog.apply()
    path = app_paths().settings_file
    settings.save(path)
    loaded = Settings.load(path)
    assert (loaded.context_size, loaded.temperature, loaded.top_k, loaded.threads) == (
        2048,
        0.7,
        8,
        1,
    )
