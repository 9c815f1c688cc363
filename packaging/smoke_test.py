"""Smoke test of the built bundle: no network, no Python, headless.

    python3 packaging/smoke_test.py [--bundle dist/desktop-rag]

Every run of the bundle's executable happens inside ``unshare -rmn``: a user namespace with its
own network namespace (no network at all: not even loopback is up) and its own mounts, where
every Python installation of this machine (the build environment, .venv, pyenv, /usr/lib/python3*)
is hidden under an empty tmpfs, so the bundle can only use what it carries. Data goes to a
temporary ``DESKTOP_RAG_HOME``.

1. start-up: the desktop app with ``QT_QPA_PLATFORM=offscreen``, timed until its window is
   shown (the app's own start-up probe), then it quits;
2. ``desktop-rag index`` on a copy of the sample documents;
3. ``desktop-rag ask --json`` a question about them: the answer must cite the samples;
4. text recognition (OCR): a scanned page (a PDF whose page is only a picture of text, and a PNG
   of it, made here beforehand by ``make_scan_fixture.py`` with a Python that has PyMuPDF) is
   indexed into a second data folder; the recognised text and its boxes must be in the index
   (read with this Python's sqlite3) and ``ask --json`` must cite page 1 of the scan;
5. prints the bundle size (unpacked, and the tarball if built), the start-up time and the times
   of the index, OCR and ask commands. Exit status 0 only when every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    OCR_QUESTION,
    ROOT,
    Failure,
    main_guard,
    make_scans,
    mb,
    ocr_results,
    say,
    tree_size,
    unshare_works,
)

QUESTION = "How do I add my own GGUF model, and does the app ever use the network?"


def python_dirs() -> list[str]:
    """Folders holding a Python installation on this machine (hidden from the bundle)."""
    candidates = {
        sys.base_prefix,
        sys.prefix,
        str(ROOT / ".venv"),
        str(ROOT / "build" / "bundle-venv"),
        os.path.expanduser("~/.pyenv"),
        "/usr/local/lib/python3.11",
    }
    for base in ("/usr/lib", "/usr/local/lib"):
        for p in Path(base).glob("python3*"):
            candidates.add(str(p))
    # Never a folder that holds far more than Python (or the bundle itself).
    dirs = [
        str(Path(c).resolve())
        for c in candidates
        if c not in ("/", "/usr", "/usr/local") and Path(c).is_dir()
    ]
    # A folder inside another one is hidden with it (and could not be mounted on afterwards).
    return sorted(d for d in set(dirs) if not any(d.startswith(o + "/") for o in dirs))


class Sandbox:
    """Runs commands without network and without any Python of this machine."""

    def __init__(self, home: Path, isolate: bool) -> None:
        self.home = home
        self.isolate = isolate
        self.hidden = python_dirs() if isolate else []

    def env(self, **extra: str) -> dict[str, str]:
        """A minimal environment: nothing of a Python or virtual environment leaks in."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "DESKTOP_RAG_HOME": str(self.home / "desktop-rag-home"),
            "QT_QPA_PLATFORM": "offscreen",
            "XDG_RUNTIME_DIR": str(self.home / "xdg-runtime"),
        }
        env.update(extra)
        return env

    def argv(self, cmd: list[str]) -> list[str]:
        """``cmd`` wrapped in the namespace that hides the Python installations."""
        if not self.isolate:
            return cmd
        mounts = " && ".join(f"mount -t tmpfs -o ro tmpfs {shlex.quote(d)}" for d in self.hidden)
        script = f'{mounts} && exec "$@"' if mounts else 'exec "$@"'
        return ["unshare", "-rmn", "sh", "-c", script, "sh", *cmd]

    def startup(self, cmd: list[str], timeout: float, **extra: str) -> tuple[int, float | None,
                                                                              float, str]:  # fmt: skip
        """Start the desktop app with the start-up probe: (exit code, seconds until the window
        was shown or None, seconds until the process ended, its output).

        The probe line comes once the event loop has shown the window; the app then quits, which
        waits for the models still loading in the background.
        """
        (self.home / "xdg-runtime").mkdir(mode=0o700, exist_ok=True)
        t0 = time.perf_counter()
        limited = ["timeout", "-k", "5", str(int(timeout)), *cmd]  # a hung app is killed
        proc = subprocess.Popen(self.argv(limited), env=self.env(**extra), cwd=self.home,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        visible: float | None = None
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if visible is None and line.startswith("window-visible True"):
                visible = time.perf_counter() - t0
        code = proc.wait()
        if code == 124:
            raise Failure(f"the app did not quit within {timeout:.0f} s")
        return code, visible, time.perf_counter() - t0, "".join(lines)

    def run(self, cmd: list[str], timeout: float, **extra: str) -> tuple[int, str, str, float]:
        """(exit code, stdout, stderr, seconds)."""
        (self.home / "xdg-runtime").mkdir(mode=0o700, exist_ok=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(self.argv(cmd), env=self.env(**extra), cwd=self.home,
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failure(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
        return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "desktop-rag")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--allow-network", action="store_true",
                        help="run without the namespace where unshare is not permitted")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()

    args.bundle = args.bundle.resolve()  # the commands run in a temporary folder
    exe = args.bundle / "desktop-rag"
    if not exe.is_file():
        raise Failure(f"{exe} not found: build the bundle first (make bundle)")
    isolate = unshare_works()
    if not isolate and not args.allow_network:
        raise Failure("`unshare -rn` is not permitted here; pass --allow-network to test anyway")
    home = Path(tempfile.mkdtemp(prefix="desktop-rag-smoke-"))
    box = Sandbox(home, isolate)
    results: list[tuple[str, bool, str]] = []
    ocr_secs: float | None = None
    try:
        if isolate:
            say(f"namespace: no network; hidden Python installations: {', '.join(box.hidden)}")
            code, out, err, _ = box.run(
                ["sh", "-c", "python3 -c 'print(1)' || python3.11 -c 1"], 30
            )
            results.append(("no usable Python inside", code != 0, f"python3 exit {code}"))
            # /proc/net/dev lists the interfaces of the reader's own network namespace.
            code, out, err, _ = box.run(["cat", "/proc/net/dev"], 30)
            names = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
            results.append(("no network inside", names == ["lo"], f"interfaces: {names}"))

        # 1. the desktop app, headless, until its window is visible (a first start: fresh home)
        code, visible, secs, out = box.startup([str(exe)], 300, DESKTOP_RAG_STARTUP_PROBE="quit")
        ok = code == 0 and visible is not None
        detail = (f"window visible after {visible:.2f} s; quit after {secs:.1f} s (it waits for "
                  "the models loading in the background)" if ok else
                  f"exit {code} after {secs:.1f} s: {out[-1500:]}")  # fmt: skip
        results.append(("first start: window shown (offscreen)", ok, detail))
        startup = visible or secs
        code, visible, secs, out = box.startup([str(exe)], 300, DESKTOP_RAG_STARTUP_PROBE="quit")
        ok = code == 0 and visible is not None
        results.append(("second start: window shown", ok, f"window visible after {visible:.2f} "
                        f"s; quit after {secs:.1f} s" if ok else f"exit {code}: {out[-1500:]}"))  # fmt: skip
        startup_warm = visible or secs
        code, out, err, secs = box.run([str(exe), "--version"], 60)
        results.append(("CLI starts", code == 0, f"{secs:.2f} s for --version: {out.strip()}"))

        # 2. index a copy of the sample documents
        samples = home / "samples"
        shutil.copytree(ROOT / "resources" / "samples", samples)
        code, out, err, secs = box.run([str(exe), "index", str(samples)], 600)
        summary = " ".join(line.strip() for line in out.splitlines()[-3:])
        results.append(("index samples", code == 0, f"{secs:.1f} s: {summary}"
                        + ("" if code == 0 else f"; {err[-1500:]}")))  # fmt: skip

        # 3. ask a question through the same bundle's CLI
        code, out, err, secs = box.run([str(exe), "ask", "--json", args.question], 600)
        answer: dict[str, object] = {}
        if code == 0:
            try:
                answer = json.loads(out)
            except ValueError:
                answer = {}
        cites = answer.get("citations") or []
        files = sorted({Path(str(c["file"])).name for c in cites})  # type: ignore[index, union-attr]
        ok = bool(answer.get("answer")) and not answer.get("abstained") and bool(files)
        detail = (f"{secs:.1f} s, {len(cites)} sources from {files}, timings "
                  f"{answer.get('timings')}" if answer else f"exit {code}: {err[-1500:]}")  # fmt: skip
        results.append(("ask --json answers with sources", ok, detail))
        if answer.get("answer"):
            say("answer: " + " ".join(str(answer["answer"]).split())[:600])
        code, out, err, _ = box.run([str(exe), "status"], 60)
        results.append(("status", code == 0, " ".join(out.split())[:300]))

        # 4. OCR: a scanned PDF page and an image, indexed into their own data folder
        scans, ocr_home = home / "scans", home / "ocr-home"
        # the chat model's one-time F16 copy, made by the first start, is shared
        ocr_env = {"DESKTOP_RAG_HOME": str(ocr_home),
                   "DESKTOP_RAG_GGUF_CACHE": str(box.env()["DESKTOP_RAG_HOME"] + "/cache/gguf")}  # fmt: skip
        # made outside the bundle, with a Python that has PyMuPDF
        make_scans(scans, [sys.executable, ROOT / "build" / "bundle-venv" / "bin" / "python",
                           ROOT / ".venv" / "bin" / "python"])  # fmt: skip
        code, out, err, ocr_secs = box.run([str(exe), "index", str(scans)], 600, **ocr_env)
        summary = " ".join(line.strip() for line in out.splitlines()[-3:])
        ok = code == 0 and bool(re.search(r"Indexed 2 file\(s\) \(2 pages", out))
        results.append(("index a scanned PDF page and a PNG (OCR)", ok, f"{ocr_secs:.1f} s: "
                        f"{summary}" + ("" if ok else f"; {err[-1500:]}")))  # fmt: skip
        results += ocr_results(ocr_home / "data" / "index.sqlite3")  # read here, not by the bundle
        code, out, err, secs = box.run([str(exe), "ask", "--json", OCR_QUESTION], 600, **ocr_env)
        try:
            answer = json.loads(out) if code == 0 else {}
        except ValueError:
            answer = {}
        cites = answer.get("citations") or []
        found = sorted({f"{Path(str(c['file'])).name} p{c['page']}" for c in cites})  # type: ignore[index]
        ok = "scan.pdf p1" in found
        results.append(("ask --json cites the scan", ok, f"{secs:.1f} s, sources {found}"
                        + (f", answer {' '.join(str(answer.get('answer')).split())[:160]!r}"
                           if answer else f"; exit {code}: {err[-1500:]}")))  # fmt: skip
    finally:
        if args.keep:
            say(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    size, nfiles = tree_size(args.bundle)
    tarballs = sorted(args.bundle.parent.glob("desktop-rag-*.tar.gz"))
    say("")
    for name, ok, detail in results:
        say(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    say(f"bundle unpacked: {mb(size)} in {nfiles} files")
    for t in tarballs:
        say(f"tarball: {t.name} {mb(t.stat().st_size)}")
    say(f"start-up to a visible window: {startup:.2f} s (first start), {startup_warm:.2f} s "
        "(second start)")  # fmt: skip
    if ocr_secs is not None:
        say(f"OCR: `index` of the scanned PDF page and the PNG took {ocr_secs:.1f} s (a fresh "
            "data folder: the embedding model, the worker and the OCR engine start)")  # fmt: skip
    failed = sum(not ok for _, ok, _ in results)
    say(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    main_guard(main)
