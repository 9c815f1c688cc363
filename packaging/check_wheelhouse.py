"""Test the offline wheelhouse: a fresh virtual environment installed from it with no network.

    python3 packaging/check_wheelhouse.py [--wheelhouse wheelhouse]

Inside ``unshare -rn`` (a network namespace with no network) and with every pip setting of this
machine removed (no configuration file, no ``PIP_*`` variables, so only the wheelhouse can
supply packages), ``install_offline.sh`` creates a new virtual environment in a temporary
folder; then, still without network, that environment indexes a copy of the sample documents and
answers a question through its ``desktop-rag`` command, starts the OCR engine from the installed
rapidocr's own model files and indexes a scanned page (an image-only PDF page and a PNG, made by
``make_scan_fixture.py``), whose recognised text must be in the index. Prints the wheelhouse size
and wheel count, the install time, the environment's size and each step's result; exits 0 only
when every step passed.
"""

from __future__ import annotations

import argparse
import json
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
    clean_pip_env,
    main_guard,
    make_scans,
    mb,
    ocr_results,
    say,
    tree_size,
    unshare_works,
)

QUESTION = "How do I add my own GGUF model, and does the app ever use the network?"


def base_python() -> str:
    """A Python 3.11 that is not a virtual environment's (the target has a plain one)."""
    base = getattr(sys, "_base_executable", sys.executable)
    if sys.version_info[:2] == (3, 11) and base and Path(base).exists():
        return str(base)
    found = shutil.which("python3.11")
    if found:
        return found
    raise Failure("no Python 3.11 found: pass --python /path/to/python3.11")


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument("--python", default=None, help="Python 3.11 for the new environment")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--keep", action="store_true", help="keep the temporary environment")
    args = parser.parse_args()

    wheelhouse = args.wheelhouse.resolve()
    script = wheelhouse / "install_offline.sh"
    if not script.exists():
        raise Failure(f"{script} not found: build the wheelhouse first (make wheelhouse)")
    if not unshare_works():
        raise Failure("`unshare -rn` is not permitted here: cannot test without network")
    python = args.python or base_python()
    wheels = sorted(wheelhouse.glob("*.whl"))
    wh_size = sum(w.stat().st_size for w in wheels)

    tmp = Path(tempfile.mkdtemp(prefix="desktop-rag-wheelhouse-"))
    venv, home = tmp / "venv", tmp / "home"
    env = clean_pip_env(PYTHON=python, DESKTOP_RAG_HOME=str(home), HOME=str(tmp),
                        QT_QPA_PLATFORM="offscreen")  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = "/usr/bin:/bin"
    results: list[tuple[str, bool, str]] = []

    def offline(cmd: list[str], timeout: float, **extra: str) -> tuple[int, str, float]:
        t0 = time.perf_counter()
        try:
            # cwd: the temporary folder, so `python -c` cannot import this checkout's package.
            proc = subprocess.run(["unshare", "-rn", *cmd], env={**env, **extra}, cwd=tmp,
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failure(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0

    try:
        say(f"installing from {wheelhouse} into {venv} (no network) ...")
        code, out, secs = offline(["nice", "-n", "10", "sh", str(script), str(venv)], 1800)
        results.append(("offline install", code == 0,
                        f"{secs:.0f} s" + ("" if code == 0 else f": {out[-3000:]}")))  # fmt: skip
        if code != 0:
            raise Failure(f"the offline install failed after {secs:.0f} s:\n{out[-3000:]}")
        vsize, _ = tree_size(venv)
        vpy, exe = str(venv / "bin" / "python"), str(venv / "bin" / "desktop-rag")

        code, out, _ = offline([vpy, "-m", "pip", "list", "--format", "json"], 120)
        installed = {d["name"].lower(): d["version"] for d in json.loads(out.splitlines()[-1])}
        cuda = sorted(n for n in installed if n.startswith(("nvidia", "triton")))
        results.append(("CPU torch, no CUDA packages", "+cpu" in installed.get("torch", "")
                        and not cuda, f"torch {installed.get('torch')}, {len(installed)} "
                        f"packages, CUDA packages: {cuda or 'none'}"))  # fmt: skip

        probe = ("from desktop_rag.core.resources import resources_dir as r; "
                 "print(r(), (r() / 'prompts' / 'answer_system.txt').exists(), "
                 "(r() / 'samples').is_dir(), (r() / 'adapters' / 'executive-brief.gguf').exists())")  # fmt: skip
        code, out, _ = offline([vpy, "-c", probe], 60)
        words = out.split()
        ok = words[-3:] == ["True"] * 3 and bool(words) and words[0].startswith(str(venv))
        results.append(("installed resources (prompt, samples, adapter)", ok, " ".join(words)))

        samples = tmp / "samples"
        shutil.copytree(ROOT / "resources" / "samples", samples)
        code, out, secs = offline([exe, "index", str(samples)], 900)
        results.append(("index samples", code == 0, f"{secs:.1f} s: "
                        + " ".join(ln.strip() for ln in out.splitlines()[-3:])))  # fmt: skip
        code, out, secs = offline([exe, "ask", "--json", args.question], 900)
        answer: dict[str, object] = {}
        if code == 0:
            try:
                answer = json.loads(out[out.index("{") :])
            except ValueError:
                answer = {}
        cites = answer.get("citations") or []
        files = sorted({Path(str(c["file"])).name for c in cites})  # type: ignore[index, union-attr]
        ok = bool(answer.get("answer")) and not answer.get("abstained") and bool(files)
        results.append(("ask --json answers with sources", ok,
                        f"{secs:.1f} s, sources {files}" if answer else out[-2000:]))  # fmt: skip
        if answer.get("answer"):
            say("answer: " + " ".join(str(answer["answer"]).split())[:500])

        # OCR: the engine from the installed rapidocr's model files (RapidOCR loads them on first
        # use: recognising the scan below runs them), then a scanned page indexed, no network.
        probe = ("import rapidocr, requests; from desktop_rag.core.ingest.extract.ocr import "
                 "model_files, ocr_engine; ocr_engine(); "
                 "print(*[p for p in model_files().values()])")  # fmt: skip
        code, out, _ = offline([vpy, "-c", probe], 120)
        paths = out.split()
        ok = code == 0 and len(paths) == 3 and all(p.startswith(str(venv)) for p in paths)
        results.append(("OCR engine starts from the installed models", ok,
                        " ".join(Path(p).name for p in paths) if ok else out[-2000:]))  # fmt: skip
        scans = tmp / "scans"
        # a data folder of its own; the chat model's F16 copy made by the first answer is shared
        ocr_env = {"DESKTOP_RAG_HOME": str(tmp / "ocr-home"),
                   "DESKTOP_RAG_GGUF_CACHE": str(home / "cache" / "gguf")}  # fmt: skip
        make_scans(scans, [vpy])
        code, out, secs = offline([exe, "index", str(scans)], 900, **ocr_env)
        results.append(("index a scanned PDF page and a PNG (OCR)", code == 0, f"{secs:.1f} s: "
                        + " ".join(ln.strip() for ln in out.splitlines()[-3:])))  # fmt: skip
        results += ocr_results(tmp / "ocr-home" / "data" / "index.sqlite3")
        code, out, secs = offline([exe, "ask", "--json", OCR_QUESTION], 900, **ocr_env)
        try:
            cites = json.loads(out[out.index("{") :]).get("citations") or [] if code == 0 else []
        except ValueError:
            cites = []
        found = sorted({f"{Path(str(c['file'])).name} p{c['page']}" for c in cites})
        results.append(("ask --json cites the scan", "scan.pdf p1" in found,
                        f"{secs:.1f} s, sources {found}" if cites else out[-2000:]))  # fmt: skip
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    say("")
    say(f"wheelhouse: {wheelhouse}: {len(wheels)} wheels, {mb(wh_size)}")
    say(f"new environment: {mb(vsize)}")
    for name, ok, detail in results:
        say(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    failed = sum(not ok for _, ok, _ in results)
    say(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    main_guard(main)
