"""The eval command and its metrics on a generated corpus with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from desktop_rag.cli import cli
from desktop_rag.core.evaluation import Question, RetrievalScores, answer_correct
from desktop_rag.core.types import Hit


def _hit(name: str, text: str, page: int | None = None) -> Hit:
    return Hit(1, 1, f"/d/{name}", page, 0, len(text), text, "", 1.0)


def test_answer_correct_containment_and_figures() -> None:
    assert answer_correct("The orchard yielded 38 tonnes [1].", "38 tonnes")
    assert answer_correct("Net sales were $81,797 million.", "$81797 million")
    assert answer_correct("about 81.8 billion dollars (81,800)", "81,797")  # within 1%
    assert not answer_correct("Net sales were $94,836 million.", "$81,797 million")
    assert not answer_correct("It was planted long ago.", "1931")


def test_retrieval_metrics_by_hand() -> None:
    q = Question("q1", "yield?", "38 tonnes", ({"doc": "a.pdf", "page": 2, "text": None},))
    s = RetrievalScores(k=2)
    hits = [_hit("b.pdf", "other"), _hit("a.pdf", "it gave 38 tonnes", 2), _hit("a.pdf", "x", 1)]
    s.add(q, hits, passage_supported=True, latency_ms=5.0, answer_docs=["it gave 38 tonnes"])
    out = s.summary()
    assert out["doc_hit@2"] == 1.0 and out["page_hit@2"] == 1.0
    assert out["passage_hit@2"] == 1.0 and out["answer_hit@2"] == 1.0
    assert out["mrr@10"] == 0.5
    assert 0 < out["ndcg@10"] < 1  # type: ignore[operator]
    s2 = RetrievalScores(k=1)
    s2.add(q, hits, passage_supported=True, latency_ms=5.0, answer_docs=["it gave 38 tonnes"])
    assert s2.summary()["doc_hit@1"] == 0.0


@pytest.mark.slow  # the CLI loads the real models in-process
def test_eval_command_writes_the_report(corpus: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "1", "question": "How many tonnes of apples did the orchard yield in 2022?",
         "answer": "38 tonnes", "evidence": [{"doc": "orchard.pdf", "page": 2, "text": None}]},
        {"id": "2", "question": "When does the colony cluster to keep the queen warm?",
         "answer": "In winter", "evidence": [{"doc": "beekeeping.md", "page": None, "text": None}]},
        {"id": "3", "question": "What gust did the anemometer measure during the storm?",
         "answer": "142 km/h", "evidence": [{"doc": "station.html", "page": None, "text": None}]},
    ]  # fmt: skip
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    ooc = tmp_path / "ooc.jsonl"
    ooc.write_text(json.dumps({"id": "x", "question": "Which team won the 1998 football world cup?",
                               "answer": "France", "evidence": []}))  # fmt: skip
    out = tmp_path / "report.json"
    res = CliRunner().invoke(cli, ["eval", "--docs", str(corpus), "--questions", str(questions),
                                   "--modes", "default,dense,bm25", "--generate", "--limit", "2",
                                   "--ooc", str(ooc), "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["questions"] == 3
    assert set(report["retrieval"]) == {"default", "dense", "bm25"}
    d = report["retrieval"]["default"]
    assert d["doc_hit@5"] == 1.0 and d["page_hit@5"] == 1.0 and d["answer_hit@5"] == 1.0
    assert d["mrr@10"] > 0.5 and 0 < d["ndcg@10"] <= 1
    assert report["abstention"]["out_of_corpus_abstained"] == 1.0
    a = report["answers"]
    assert a["generated"] == 3 and a["ooc_abstention_rate"] == 1.0
    assert set(a) >= {"correct", "citation_precision", "abstention_rate"}
    assert report["latency"]["retrieval_ms_p50"] > 0 and report["latency"]["ttft_s_p50"] > 0
    assert "doc_hit@5" in res.output
