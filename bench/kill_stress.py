"""Crash-safety stress: SIGKILL the indexer at random moments; the index must always recover.

Usage: python bench/kill_stress.py [--iterations 200] [--docs DIR] [--max-delay 30] [--seed 0]

A reference home is indexed once to the end. Then, in a second home, ``desktop-rag index DOCS``
is started again and again and killed with SIGKILL after a random delay (a run that finishes
first is compared with the reference and the home is emptied, so kills keep landing mid-run).
After every kill the store must reopen consistent: ``PRAGMA integrity_check`` is ok, the hnswlib
cache is either verified by its manifest checksum or rebuilt from SQLite, and its labels are
exactly the chunk ids in SQLite. Every completed run must reach exactly the reference state
(same files, content hashes, statuses and chunk counts). Prints the recovered/total figure.
Not a test (it takes about 10 s per iteration); ``tests/test_crash_safety.py`` runs a few.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_docs(folder: Path, n: int = 24) -> Path:
    """A deterministic folder of text and Markdown files plus the sample PDF and HTML."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "resources" / "samples").iterdir():
        shutil.copy(f, folder / f.name)
    for i in range(n):
        body = "\n\n".join(
            f"Entry {j} of log {i}: the pump at station {j % 7} moved {i * 31 + j * 17} cubic "
            f"metres of water on day {j + 1}, and the crew noted the pressure at {20 + j % 9} bar."
            for j in range(30)
        )
        suffix = ".md" if i % 2 else ".txt"
        (folder / f"log-{i:02d}{suffix}").write_text(f"# Log {i}\n\n{body}\n", encoding="utf-8")
    return folder


def run_index(home: Path, docs: Path) -> subprocess.Popen[bytes]:
    """Start ``desktop-rag index DOCS`` in ``home`` (a child process)."""
    env = {**os.environ, "DESKTOP_RAG_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_rag", "index", str(docs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def committed_files(home: Path) -> int:
    """How many files the home's store has committed so far (0 before the store exists)."""
    import sqlite3

    db = home / "data" / "index.sqlite3"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return int(con.execute("SELECT count(*) FROM files").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def state(home: Path) -> dict[str, tuple[str | None, str, int]]:
    """``{path: (sha256, status, chunks)}`` of every file in the home's store."""
    import sqlite3

    con = sqlite3.connect(home / "data" / "index.sqlite3")
    try:
        rows = con.execute(
            "SELECT f.path, f.sha256, f.status, (SELECT count(*) FROM chunks c WHERE c.file_id=f.id)"
            " FROM files f"
        ).fetchall()
    finally:
        con.close()
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def check_consistent(home: Path) -> str:
    """Reopen the store and vector cache as the app does; returns "" if consistent, else why.

    Also returns how the vector cache was opened ("loaded" = manifest and checksum verified,
    "rebuilt" = rebuilt from SQLite) after a colon, for the report.
    """
    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.index.store import Store
    from desktop_rag.core.index.vectors import VectorIndex
    from desktop_rag.core.models import bundled_embedding_dir

    db = home / "data" / "index.sqlite3"
    if not db.exists():
        return ":none"  # killed before the store was created
    store = Store(db)
    try:
        check = store.con.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            return f"integrity_check: {check}"
        model_dir = bundled_embedding_dir()
        assert model_dir is not None
        identity = Embedder(model_dir, "all-MiniLM-L6-v2").identity
        if store.stored_identity() is None:
            return ":none"
        vectors = VectorIndex(home / "data" / "vectors", identity)
        how = vectors.ensure(store)
        ids = {int(r[0]) for r in store.con.execute("SELECT id FROM chunks")}
        labels = set(vectors.labels())
        if labels != ids:
            return f"hnswlib labels differ from SQLite chunk ids ({len(labels)} vs {len(ids)})"
        return f":{how}"
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--docs", type=Path, default=None)
    ap.add_argument("--max-delay", type=float, default=30.0, help="seconds before the kill")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="drag-kill-"))
    docs = args.docs or make_docs(work / "docs")
    ref_home, home = work / "reference", work / "stressed"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "desktop_rag", "index", str(docs)], check=True,
                   env={**os.environ, "DESKTOP_RAG_HOME": str(ref_home)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    reference = state(ref_home)
    print(f"reference: {len(reference)} files, {sum(c for *_, c in reference.values())} chunks "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    recovered = kills = completed = 0
    opened: dict[str, int] = {}
    for i in range(args.iterations):
        proc = run_index(home, docs)
        delay = rng.uniform(0.5, args.max_delay)
        try:
            proc.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            finished = False
        problem = check_consistent(home)
        ok = problem.startswith(":")
        opened[problem.lstrip(":") if ok else "inconsistent"] = (
            opened.get(problem.lstrip(":") if ok else "inconsistent", 0) + 1
        )
        if finished:
            completed += 1
            same = state(home) == reference
            ok = ok and same and proc.returncode == 0
            if not same:
                problem = "a completed run differs from the clean run"
            shutil.rmtree(home)  # start over so the next kills land mid-run again
        else:
            kills += 1
        recovered += ok
        print(f"[{i + 1:>3}/{args.iterations}] {'completed' if finished else 'killed'} after "
              f"{delay:4.1f} s: {'ok' if ok else 'FAILED ' + problem} {problem if ok else ''}",
              flush=True)  # fmt: skip
    # Finally resume whatever state the last kill left and compare with the clean run.
    subprocess.run([sys.executable, "-m", "desktop_rag", "index", str(docs)], check=True,
                   env={**os.environ, "DESKTOP_RAG_HOME": str(home)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    final_same = state(home) == reference
    print(f"\nrecovered {recovered}/{args.iterations} ({kills} SIGKILLs mid-run, {completed} "
          f"runs completed and matched the clean run: see above); vector cache on reopening: "
          f"{opened}; final resume equals the clean run: {final_same}")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if recovered == args.iterations and final_same else 1)


if __name__ == "__main__":
    main()
