"""Figure-constrained decoding: the mask's rules on a small vocabulary, and the real model
writing only numbers its sources contain."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from desktop_rag.core.generate.constrained import AllowedFigures, FigureConstraint, VocabDigits
from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.search.claims import figure_strings, figures

# A vocabulary in the shape of SmolLM2's: single digits, punctuation runs, words.
VOCAB = ["<eos>", " ", "a", ",", ".", ". ", ".\n", "[", "]", " million", "\n", ")", "-", "COVID",
         "²", *"0123456789"]  # fmt: skip
SOURCE = "Total net sales 81,797 and 82,959 (in millions) for the quarter ended July 1, 2023; 1.26"


def _allowed(c: FigureConstraint, text: str) -> set[str]:
    logits = np.zeros(len(VOCAB), dtype=np.float32)
    c.apply(text, logits)
    return {VOCAB[i] for i in np.flatnonzero(np.isfinite(logits))}


@pytest.fixture
def constraint() -> FigureConstraint:
    return FigureConstraint(figure_strings([SOURCE]), 3, VocabDigits.from_texts(VOCAB))


def test_figure_strings_are_the_numbers_as_written_and_without_separators() -> None:
    assert figure_strings([SOURCE]) == {"81,797", "81797", "82,959", "82959", "1", "2023", "1.26"}


def test_vocab_keeps_only_tokens_that_matter_to_numbers() -> None:
    v = VocabDigits.from_texts(VOCAB)
    kept = {VOCAB[i] for i in v.ids}
    assert kept == {",", ".", ". ", ".\n", *"0123456789"}  # "²" is no decimal digit
    assert v.n_vocab == len(VOCAB)


def test_a_number_may_only_start_as_an_allowed_one(constraint: FigureConstraint) -> None:
    allowed = _allowed(constraint, "Sales were ")
    assert allowed & set("0123456789") == {"1", "2", "8"}
    assert {" million", "COVID", "<eos>", "a"} <= allowed  # words stay free


def test_a_half_written_number_must_go_on_to_an_allowed_one(
    constraint: FigureConstraint,
) -> None:
    assert _allowed(constraint, "Sales were 8") == {"1", "2"}
    assert _allowed(constraint, "Sales were 82") == {",", "9"}  # 82,959 or 82959
    assert _allowed(constraint, "Sales were 82,") == {"9"}
    done = _allowed(constraint, "Sales were 82,959")
    assert not done & set("0123456789") and {" million", "<eos>", ". "} <= done
    assert "2" in _allowed(constraint, "It was 1.")  # 1.26 goes on; "1." may also end a sentence
    assert " " in _allowed(constraint, "It was 1.")


def test_citation_markers_take_source_numbers_only(constraint: FigureConstraint) -> None:
    assert _allowed(constraint, "Sales rose [") & set("0123456789") == {"1", "2", "3"}
    after = _allowed(constraint, "Sales rose [2")
    assert "]" in after and "," in after and not after & set("0123456789")  # no [23]
    assert _allowed(constraint, "Sales rose [2, ") & set("0123456789") == {"1", "2", "3"}


def test_list_numbers_and_digits_in_names_stay_free(constraint: FigureConstraint) -> None:
    assert set("0123456789") <= _allowed(constraint, "Steps:\n")  # "7. " may start an item
    assert ". " in _allowed(constraint, "Steps:\n7")
    assert " " not in _allowed(constraint, "Steps:\n7"), "'7 ' is a figure, not an item number"
    assert set("0123456789") <= _allowed(constraint, "the COVID-")  # COVID-19 is a name
    assert set("0123456789") <= _allowed(constraint, "gene IFITM")


def test_the_mask_never_leaves_nothing(constraint: FigureConstraint) -> None:
    # "5" cannot start any allowed number, but a state that got there anyway (the text came
    # from elsewhere) must still leave the model a token to write.
    logits = np.zeros(len(VOCAB), dtype=np.float32)
    assert constraint.apply("It was 5", logits) == len(VOCAB)
    assert np.isfinite(logits).all()


@pytest.fixture(scope="module")
def llm(llm_path: Path) -> LocalLLM:
    model = LocalLLM(llm_path, n_ctx=1024, threads=1)
    model.load()
    return model


def test_the_real_model_writes_only_numbers_of_its_sources(llm: LocalLLM) -> None:
    source = (
        "[1] Apple Inc. Condensed Consolidated Statements of Operations (in millions). Three "
        "Months Ended July 1, 2023: Total net sales 81,797; June 25, 2022: 82,959."
    )
    messages = [{"role": "user", "content": f"{source}\n\nWhat were Apple's net sales? "
                 "Give the figures and cite [1]."}]  # fmt: skip
    allowed = AllowedFigures(figure_strings([source]), 1)
    values = {float(f.replace(",", "")) for f in allowed.figures}

    def invented(text: str) -> list[str]:
        cut = re.sub(r"(?m)\[\d\]|^\s*\d{1,2}\.\s", " ", text)  # markers and list numbers
        return [cut[f.start : f.end] for f in figures(cut) if f.raw not in values]

    free_bad = 0
    for seed in range(6):  # sampled, so the free model invents numbers now and then
        free = "".join(llm.stream(messages, max_tokens=80, temperature=0.9, seed=seed))
        held = "".join(
            llm.stream(messages, max_tokens=80, temperature=0.9, seed=seed, figures=allowed)
        )
        free_bad += bool(invented(free))
        # a number cut off by max_tokens is the start of an allowed one
        bad = [b for b in invented(held) if not held.rstrip().endswith(b)]
        assert bad == [], held
    assert free_bad > 0, "the free model invented no number: the test shows nothing"
