"""The CLI end to end with the real bundled models (index, status, models, ask --json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from desktop_rag.cli import cli
from tests.conftest import DOCUGAMI, requires_docugami

pytestmark = pytest.mark.slow


def test_cli_index_status_ask_json(corpus: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["index", str(corpus)])
    assert res.exit_code == 0, res.output
    assert "Indexed 6 file(s)" in res.output
    assert "broken.pdf" in res.output and "unsupported file type .xyz" in res.output

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
                        "grounded", "checks"}  # fmt: skip
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


def test_cli_user_errors_have_no_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["ask", "anything"])
    assert res.exit_code == 1
    assert "nothing is indexed yet" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["index", str(tmp_path / "nope")])
    assert res.exit_code == 0 and "no such file or folder" in res.output


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


def test_question_outside_the_documents_abstains(corpus: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(corpus)]).exit_code == 0
    res = runner.invoke(cli, ["ask", "--json", "Which team won the 1998 football world cup final?"])
    out = json.loads(res.output)
    assert out["abstained"] is True
    assert out["answer"] == "I could not find this in your documents."
    assert not any(c["cited"] for c in out["citations"])


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
