"""The CLI end to end with the real bundled models (index, status, models, ask), and its one error
path: user errors as messages, anything else as one line naming the log file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from desktop_rag import cli as cli_module
from desktop_rag.cli import cli
from desktop_rag.core.answer_text import answer_text
from desktop_rag.core.ingest.indexer import writer_lock
from desktop_rag.core.paths import app_paths
from desktop_rag.core.text.citations import label_of
from tests.conftest import DOCUGAMI, requires_docugami


@pytest.mark.slow
def test_cli_index_status_ask_json(corpus: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["index", str(corpus)])
    assert res.exit_code == 0, res.output
    assert "Indexed 6 file(s)" in res.output
    assert "broken.pdf" in res.output and "unsupported file type .xyz" in res.output
    # Some files failed beside the others: the last line says so, and the run still succeeded.
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("Indexed 6 file(s)") and "3 not indexed (2 skipped, 1 failed" in last
    res = runner.invoke(cli, ["index", "--json", str(corpus)])
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout)
    # every file already judged (the three that failed too: they are listed, not re-read)
    assert (counts["indexed"], counts["unchanged"], counts["exit_code"]) == (0, 9, 0)
    assert (counts["skipped"], counts["failed"]) == (2, 1)  # empty.txt, image.xyz; broken.pdf
    assert {Path(p["path"]).name for p in counts["problems"]} >= {"broken.pdf"}
    # Nothing it was given could be indexed: a non-zero exit, said in the last line.
    alone = corpus.parent / "alone"
    alone.mkdir()
    (alone / "broken.pdf").write_bytes((corpus / "broken.pdf").read_bytes())
    res = runner.invoke(cli, ["index", str(alone / "broken.pdf")])
    assert res.exit_code == 1, res.output
    assert res.stdout.strip().splitlines()[-1].endswith("nothing could be indexed.")

    res = runner.invoke(cli, ["status"])
    assert res.exit_code == 0 and "6 indexed" in res.output and "all-MiniLM-L6-v2" in res.output

    res = runner.invoke(cli, ["models", "--json"])
    kinds = {m["kind"] for m in json.loads(res.output) if m["bundled"]}
    assert kinds == {"embedding", "llm"}

    res = runner.invoke(
        cli, ["ask", "--json", "How many tonnes of apples did the orchard yield in 2022?"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == {"answer", "abstained", "citations", "timings", "evidence", "generated",
                        "grounded", "checks", "backend", "error"}  # fmt: skip
    assert out["backend"] == "local: SmolLM2-135M-Instruct-Q4_1" and out["error"] is None
    assert set(out["timings"]) == {"retrieval_ms", "ttft_s", "tokens_per_s"}
    assert out["answer"].strip()
    first = out["citations"][0]
    assert Path(first["file"]).name == "orchard.pdf" and first["page"] == 2 and first["n"] == 1
    assert "38 tonnes" in first["text"]
    assert [c["n"] for c in out["citations"]] == list(range(1, len(out["citations"]) + 1))
    for c in out["citations"]:
        assert isinstance(c["cited"], bool) and isinstance(c["score"], float)
        # a [n] marker in the answer marks exactly the cited sources
        assert c["cited"] == (
            f"[{c['n']}]" in out["answer"]
            or f"{c['n']}," in out["answer"]
            or f", {c['n']}]" in out["answer"]
        )
    # The plain output is the one rendering of the same (greedy, so identical) answer: the
    # evidence, the checked answer with its marks, the sources by their own unit.
    res = runner.invoke(cli, ["ask", "How many tonnes of apples did the orchard yield in 2022?"])
    assert res.exit_code == 0, res.output
    shown = answer_text(out["answer"], out["citations"], out, snippet_chars=110)
    assert shown.evidence and shown.body and shown.sources
    assert res.stdout.startswith(f"{shown.evidence}\n\n{shown.body}\n\n{shown.sources}\n")
    assert "(retrieval " in res.stdout.splitlines()[-1]


@pytest.mark.slow
def test_cli_user_errors_have_no_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["ask", "anything"])
    assert res.exit_code == 1
    assert "nothing is indexed yet" in res.output and "Traceback" not in res.output


def test_indexing_a_missing_folder_exits_2_before_anything_loads(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = str(tmp_path / "no" / "such" / "folder")
    res = runner.invoke(cli, ["index", missing])
    assert res.exit_code == 2, res.output
    assert f"failed   {missing}: no such file or folder" in res.stderr
    assert "Loading the embedding model" not in res.output, "nothing was loaded for nothing"
    assert not (app_paths().data / "index.sqlite3").exists(), "not even the index was opened"
    res = runner.invoke(cli, ["index", "--json", missing, str(tmp_path / "nope.pdf")])
    assert res.exit_code == 2
    counts = json.loads(res.stdout)
    assert (counts["failed"], counts["indexed"], counts["exit_code"]) == (2, 0, 2)
    assert [p["reason"] for p in counts["problems"]] == ["no such file or folder"] * 2


@pytest.mark.slow
@requires_docugami
def test_docugami_fact_page_is_retrieved_and_cited() -> None:
    runner = CliRunner()
    docs = [str(DOCUGAMI / "2023 Q3 AAPL.pdf"), str(DOCUGAMI / "2022 Q3 AAPL.pdf")]
    res = runner.invoke(cli, ["index", *docs])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli,
        ["ask", "--json", "What was Apple's total net sales for the quarter ended July 1, 2023?"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert not out["abstained"]
    gold = [
        c
        for c in out["citations"]
        if Path(c["file"]).name == "2023 Q3 AAPL.pdf"
        and "81,797" in c["text"]
        and c["page"] in (4, 19)
    ]
    assert gold, "the statement of operations (p. 4) or the segment table (p. 19) is a source"
    # The reader is pointed at it: the answer cites it or its evidence quotes it.
    gold_n = {c["n"] for c in gold}
    assert any(c["cited"] for c in gold) or any(e["n"] in gold_n for e in out["evidence"])
    # The same two filings compared: each report's own current-quarter total net sales.
    res = runner.invoke(cli, ["compare", "2022 Q3 AAPL.pdf", "2023 Q3 AAPL.pdf", "--json",
                              "--aspect", "revenue"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    total = next(f for f in data["figures_differ"] if f["item"].endswith("Total net sales"))
    assert (total["a"]["value"], total["b"]["value"]) == ("82,959", "81,797")
    assert total["a"]["page"] == total["b"]["page"] == 4
    markdown = runner.invoke(cli, ["compare", "2022 Q3 AAPL.pdf", "2023 Q3 AAPL.pdf"]).stdout
    assert "## Figures that differ" in markdown and "| Net sales › Total net sales" in markdown


@pytest.mark.slow
def test_question_outside_the_documents_abstains(corpus: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(corpus)]).exit_code == 0
    question = "Which team won the 1998 football world cup final?"
    res = runner.invoke(cli, ["ask", "--json", question])
    out = json.loads(res.output)
    assert out["abstained"] is True
    assert out["answer"] == "I could not find this in your documents."
    assert not any(c["cited"] for c in out["citations"])
    # As text: the sources are named by the one source label ("file, page N" or the file alone).
    res = runner.invoke(cli, ["ask", question])
    assert res.exit_code == 0, res.output
    assert "I could not find this in your documents." in res.output
    listed = re.findall(r"^\[(\d+)\] (.+?)(?: \(cited\))?: “", res.output, re.M)
    labels = [label_of(c) for c in out["citations"]]
    assert [label for _, label in listed] == labels and labels


@pytest.mark.slow
def test_first_start_eval_exits_zero(tmp_path: Path) -> None:
    """`desktop-rag eval` in a fresh data folder, with no ONNX graph exported yet, must exit 0.

    The first question starts the question encoder's ONNX export in a background thread; the
    process used to print its report and then abort at interpreter exit ("terminate called
    without an active exception", exit 134) with that native thread still running."""
    import os
    import subprocess
    import sys

    docs = Path(__file__).resolve().parents[1] / "resources" / "samples"
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "q1", "question": "Does the app need a network connection?",
                    "answer": "no", "evidence": [{"doc": "privacy-and-offline.html",
                                                  "page": None, "text": "offline"}]}) + "\n"
    )  # fmt: skip
    env = dict(os.environ)
    env["DESKTOP_RAG_HOME"] = str(tmp_path / "fresh")
    env["DESKTOP_RAG_ONNX_CACHE"] = str(tmp_path / "onnx")  # empty: the export runs this time
    res = subprocess.run(
        [sys.executable, "-m", "desktop_rag", "eval", "--docs", str(docs),
         "--questions", str(questions)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 questions" in res.stdout
    # The export was joined, not abandoned: the next start finds a finished, checked graph.
    assert list((tmp_path / "onnx").glob("*/manifest.json")), "the export did not finish"


# -- the one error path ------------------------------------------------------------------------


def test_unexpected_error_is_one_line_naming_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (not a UserError) prints one line with the log file's path and exits 1; the
    traceback is in that log file, not on the screen."""

    def broken_engine() -> None:
        raise RuntimeError("boom: the engine fell over\nsecond line of the message")

    monkeypatch.setattr(cli_module, "_engine", broken_engine)
    res = CliRunner().invoke(cli, ["status"])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    log_file = app_paths().logs / "desktop-rag.log"
    assert lines[0] == (
        f"Error: unexpected error (RuntimeError: boom: the engine fell over); details in {log_file}"
    )
    logged = log_file.read_text(encoding="utf-8")
    assert "unexpected error in `desktop-rag" in logged
    assert "Traceback (most recent call last)" in logged and "in broken_engine" in logged
    assert "RuntimeError: boom: the engine fell over" in logged


def test_training_without_the_train_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed
    examples = tmp_path / "ex.jsonl"
    examples.write_text("{}\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["adapters", "train", str(examples), "--name", "mine"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.exception is not None
    assert "training needs the train extra (peft not installed)" in res.output
    assert "pip install 'desktop-rag[train]'" in res.output
    assert not (app_paths().adapters_dir / "mine.gguf").exists()


def test_training_refuses_bad_names_and_malformed_examples(tmp_path: Path) -> None:
    examples = tmp_path / "ex.jsonl"
    examples.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli, ["adapters", "train", str(examples), "--name", "my style!"])
    assert res.exit_code == 2 and "letters, digits, '-' and '_' only" in res.output
    res = runner.invoke(cli, ["adapters", "train", str(examples), "--name", "mine"])
    assert res.exit_code == 1, res.output
    assert "cannot train on ex.jsonl: line 1 is not" in res.output
    assert "Traceback" not in res.output
    paths = app_paths()
    assert not (paths.adapters_dir / "mine.gguf").exists()
    assert not (paths.cache / "mine.gguf").exists()


def _fake_index(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Index files (store, WAL, vector cache) and files that are not the index (a document, an
    adapter, the settings) in the data directory in force."""
    paths = app_paths().ensure()
    index = [paths.index_db, Path(f"{paths.index_db}-wal"), paths.vectors_dir / "index.bin"]
    for p in index:
        p.write_bytes(b"index")
    doc = tmp_path / "docs" / "report.txt"
    doc.parent.mkdir()
    keep = [doc, paths.adapters_dir / "mine.gguf", paths.settings_file]
    for p in keep:
        p.write_text("keep", encoding="utf-8")
    return index, keep


def test_reset_deletes_the_index_and_nothing_else(tmp_path: Path) -> None:
    index, keep = _fake_index(tmp_path)
    res = CliRunner().invoke(cli, ["reset", "--yes"])
    assert res.exit_code == 0, res.output
    assert "Index deleted." in res.output
    assert not any(p.exists() for p in index)
    assert not app_paths().vectors_dir.exists()
    assert all(p.read_text(encoding="utf-8") == "keep" for p in keep)


def test_reset_is_refused_while_indexing(tmp_path: Path) -> None:
    index, keep = _fake_index(tmp_path)
    with writer_lock(app_paths().index_lock):  # what an indexing run holds
        res = CliRunner().invoke(cli, ["reset", "--yes"])
    assert res.exit_code == 1
    assert "another desktop-rag process is indexing" in res.output
    assert "Traceback" not in res.output
    assert all(p.exists() for p in index + keep)
