"""Start-up: launch to a visible window, and a cold ``desktop-rag ask`` to its answer.

Usage: python bench/startup.py [--runs 5]

Each run is a fresh process, as a user starts the app: ``python -m desktop_rag`` with
``DESKTOP_RAG_STARTUP_PROBE=quit`` prints a line once the Qt event loop has shown the main
window, and the wall time from spawning the process to that line is measured (offscreen platform
unless DISPLAY is set). Then the sample documents are indexed once and ``desktop-rag ask --json``
is run cold (a fresh process: imports, embedding model, LLM load, retrieval, prompt, answer);
its wall time and the answer's own time to first token are reported. Medians over ``--runs``.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--question", default="What happens if indexing is interrupted?")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drag-startup-"))
    env = {**os.environ, "DESKTOP_RAG_HOME": str(home)}
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    window: list[float] = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "desktop_rag"], env={**env,
                                "DESKTOP_RAG_STARTUP_PROBE": "quit"}, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("window-visible"):
                window.append(time.perf_counter() - t0)
                break
        proc.wait(timeout=60)
    samples = ROOT / "resources" / "samples"
    subprocess.run([sys.executable, "-m", "desktop_rag", "index", str(samples)], env=env,
                   check=True, capture_output=True)  # fmt: skip
    ask: list[float] = []
    ttft: list[float] = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "desktop_rag", "ask", "--json", args.question],
                             env=env, check=True, capture_output=True, text=True)  # fmt: skip
        ask.append(time.perf_counter() - t0)
        timings = json.loads(out.stdout).get("timings") or {}
        if timings.get("ttft_s"):
            ttft.append(float(timings["ttft_s"]))
    print(f"{args.runs} runs each, fresh processes, {os.cpu_count()} CPUs\n")
    print(f"launch to visible window         median {statistics.median(window):6.2f} s   "
          f"(min {min(window):.2f}, max {max(window):.2f})")  # fmt: skip
    print(f"cold `ask` to complete answer    median {statistics.median(ask):6.2f} s   "
          f"(min {min(ask):.2f}, max {max(ask):.2f})")  # fmt: skip
    if ttft:
        print(f"  of which time to first token   median {statistics.median(ttft):6.2f} s")


if __name__ == "__main__":
    main()
