"""SIGKILL the indexer mid-run: the store reopens consistent and resuming equals a clean run.

A handful of kills here; ``bench/kill_stress.py`` runs hundreds at random moments.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the indexer runs on the real model in child processes

_spec = importlib.util.spec_from_file_location(
    "kill_stress", Path(__file__).resolve().parents[1] / "bench" / "kill_stress.py"
)
assert _spec is not None and _spec.loader is not None
ks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ks)


def _kill_after(home: Path, docs: Path, files: int | None, delay: float = 0.0) -> None:
    """Start indexing and SIGKILL it once ``files`` are committed (or after ``delay`` s)."""
    proc = ks.run_index(home, docs)
    deadline = time.monotonic() + 300
    if files is None:
        time.sleep(delay)
    else:
        while ks.committed_files(home) < files and proc.poll() is None:
            assert time.monotonic() < deadline, "indexing made no progress"
            time.sleep(0.05)
    assert proc.poll() is None, "the run finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_mid_run_recovers_to_the_clean_state(tmp_path: Path) -> None:
    docs = ks.make_docs(tmp_path / "docs", n=12)
    ref = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "desktop_rag", "index", str(docs)], check=True,
                   env={**os.environ, "DESKTOP_RAG_HOME": str(ref)},
                   capture_output=True)  # fmt: skip
    reference = ks.state(ref)
    assert len(reference) == 15 and all(status == "indexed" for _, status, _ in reference.values())
    home = tmp_path / "stressed"
    for files, delay in ((None, 1.5), (1, 0.0), (4, 0.0), (9, 0.0)):
        _kill_after(home, docs, files, delay)
        problem = ks.check_consistent(home)
        assert problem.startswith(":"), problem
        if files:
            assert 0 < len(ks.state(home)) < len(reference)
    subprocess.run([sys.executable, "-m", "desktop_rag", "index", str(docs)], check=True,
                   env={**os.environ, "DESKTOP_RAG_HOME": str(home)},
                   capture_output=True)  # fmt: skip
    assert ks.state(home) == reference
    assert ks.check_consistent(home) in (":loaded", ":current")
