"""Summaries: extractive and model-written, every sentence cited to a real passage, checked,
cancellable, and the command line's text and JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from desktop_rag.cli import cli
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UserError
from desktop_rag.core.resources import resources_dir
from desktop_rag.core.tasks.document import document_chunks, resolve_files
from desktop_rag.core.tasks.summarize import (
    KEY_MIN,
    KEY_SHARE,
    LENGTHS,
    Summary,
    SummaryProgress,
    _Chunks,
    _headline_sentences,
    _key_figure_sentences,
    spherical_kmeans,
    summarize,
)
from desktop_rag.core.types import CancelToken, Hit
from tests.conftest import DOCUGAMI, requires_docugami


def _run(
    engine: Engine, target: object = None, **kwargs: object
) -> tuple[Summary, list[SummaryProgress]]:
    progress: list[SummaryProgress] = []
    final = None
    for event in summarize(engine, target, **kwargs):  # type: ignore[arg-type]
        if isinstance(event, SummaryProgress):
            progress.append(event)
        elif isinstance(event, Summary):
            final = event
    assert final is not None
    return final, progress


def _assert_cited_passages(engine: Engine, summary: Summary) -> None:
    """Every sentence cites a source, every source is a real passage of its page."""
    assert summary.sentences
    n = len(summary.sources)
    for s in summary.sentences:
        assert s.citations and all(1 <= c <= n for c in s.citations), s.text
    for c in summary.sources:
        page = engine.page_text(c.hit.path, c.hit.page)
        assert page is not None and page[c.hit.start : c.hit.end] == c.hit.text


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    shutil.copytree(resources_dir() / "samples", folder)
    return folder


def test_spherical_kmeans_finds_separate_topics() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(8, dtype=np.float32)[:3]
    x = np.concatenate([c + 0.05 * rng.standard_normal((20, 8)) for c in centres]).astype(
        np.float32
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    found, labels = spherical_kmeans(x, 3)
    assert sorted(np.bincount(labels).tolist()) == [20, 20, 20]
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    assert (labels[:20] == labels[0]).all() and len({labels[0], labels[20], labels[40]}) == 3


def test_extractive_summary_of_a_folder_cites_real_passages_in_order(
    engine: Engine, samples: Path
) -> None:
    engine.index_all([samples])
    engine.settings.answer_style = "evidence"
    summary, progress = _run(engine, samples, length="short")
    assert not summary.generated and not summary.note
    assert len(summary.files) == 3
    assert 1 <= len(summary.sentences) <= LENGTHS["short"]
    _assert_cited_passages(engine, summary)
    assert all(s.supported for s in summary.sentences), "the documents' own words are supported"
    assert {p.stage for p in progress} >= {"reading", "selecting"}
    assert all(p.done <= p.total for p in progress)
    payload = summary.to_json()
    assert payload["summary"] == summary.text and len(payload["sources"]) == len(summary.sources)  # type: ignore[arg-type]


def test_model_summary_is_checked_or_replaced_by_the_extractive_one(
    engine: Engine, samples: Path
) -> None:
    engine.index_all([samples])
    summary, progress = _run(engine, samples / "privacy-and-offline.html", length="short")
    assert "condensing" in {p.stage for p in progress}
    _assert_cited_passages(engine, summary)
    if summary.generated:
        figures = [c for s in summary.sentences for c in s.checks if c.kind == "figure"]
        assert all(c.supported for c in figures)
    else:
        assert "did not match your documents" in summary.note
    answer = summary.as_answer()
    assert answer.citations == summary.sources and answer.text == summary.text


def test_summary_of_an_answers_sources(engine: Engine, samples: Path) -> None:
    engine.index_all([samples])
    engine.settings.answer_style = "evidence"
    hits = engine.search("Does the app send my documents anywhere?").hits
    summary, _ = _run(engine, hits=hits, length="short")
    _assert_cited_passages(engine, summary)
    assert {c.hit.chunk_id for c in summary.sources} <= {h.chunk_id for h in hits}


def test_cancel_ends_a_summary_and_bad_targets_say_why(engine: Engine, samples: Path) -> None:
    engine.index_all([samples])
    cancel = CancelToken()
    events = []
    for event in summarize(engine, samples, cancel=cancel):
        events.append(event)
        cancel.cancel()
    assert len(events) == 1 and isinstance(events[0], SummaryProgress)
    with pytest.raises(UserError, match="not in the index"):
        list(summarize(engine, samples / "missing.pdf"))
    with pytest.raises(UserError, match="unknown summary length"):
        list(summarize(engine, samples, length="huge"))


@requires_docugami
def test_cli_summarises_a_filing_with_figures_and_json(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "filing"
    folder.mkdir()
    shutil.copy(DOCUGAMI / "2023 Q2 AAPL.pdf", folder)
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(folder)]).exit_code == 0
    result = runner.invoke(cli, ["summarize", "2023 Q2 AAPL.pdf", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"summary", "sentences", "sources", "timings"} <= set(data)
    assert data["sentences"] and all(s["citations"] for s in data["sentences"])
    assert all(s["file"].endswith("2023 Q2 AAPL.pdf") and s["page"] >= 1 for s in data["sources"])
    # a financial report's summary keeps figures that matter
    assert any("$" in s["text"] or "%" in s["text"] for s in data["sentences"])
    text = runner.invoke(cli, ["summarize", str(folder / "2023 Q2 AAPL.pdf"), "--length", "short"])
    assert text.exit_code == 0 and "Sources:" in text.stdout and ", page " in text.stdout
    missing = runner.invoke(cli, ["summarize", "no-such.pdf"])
    assert missing.exit_code != 0 and "not in the index" in missing.output


def _chunks_of(texts: list[str]) -> _Chunks:
    chunks = _Chunks()
    for i, text in enumerate(texts):
        chunks.rows.append(Hit(i, 1, "call.txt", 1, 0, len(text), text, "", 0.0))
    return chunks


def test_headline_sentences_cover_revenue_eps_and_outlook_first() -> None:
    call = [
        "Good morning and welcome to our call, everyone, and thank you for joining us today.",
        "Our margins improved to 12.5% and our margins in Europe reached 11% this quarter.",
        "Third quarter revenue increased 10.3% to $2.9 billion, driven by strong demand.",
        "Adjusted earnings per share were $0.41, up from $0.37 in the same quarter last year.",
        "For the fourth quarter we expect adjusted earnings per share of $0.43 to $0.45.",
        "The Board approved a 2.6% increase in our quarterly dividend to $0.20 per share.",
    ]
    picked = [sent for *_, sent in _headline_sentences(_chunks_of(call), 3)]
    firsts = [p.split()[0] for p in picked]
    # the outlook with its EPS, the revenue, then a new kind; margins alone wait, no greeting
    assert firsts[:2] == ["For", "Third"] and "Our" not in firsts and "Good" not in firsts, picked
    assert len(_key_figure_sentences(_chunks_of(call))) >= KEY_MIN


def test_a_guide_is_not_taken_for_a_financial_report(engine: Engine, samples: Path) -> None:
    """The app's own guides (no statements, no key metrics with money) get no headline share."""
    engine.index_all([samples])
    for f in resolve_files(engine, samples):
        chunks = _chunks_of([row.text for batch in document_chunks(engine, f) for row, _ in batch])
        assert len(_key_figure_sentences(chunks)) < max(KEY_MIN, KEY_SHARE * len(chunks.rows))
