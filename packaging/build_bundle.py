"""Build the self-contained desktop bundle: one folder with an executable, models inside, no Python
needed on the target machine, plus the launcher, the icon and a tarball of it all.

    python3.11 packaging/build_bundle.py            # or: make bundle

Steps (each prints what it runs; a failure says which step and why, without a traceback):

1. a build environment ``build/bundle-venv`` with the app's packages and PyInstaller: from the
   offline wheelhouse (``make wheelhouse``) when ``wheelhouse/`` exists, else from the package
   index like ``make install``; reused while pyproject.toml and the wheelhouse are unchanged;
2. the bundled embedding model exported to an ONNX graph (with torch, at build time) and checked
   to load without torch (``packaging/export_onnx.py``);
3. PyInstaller, one-folder mode (``packaging/desktop-rag.spec``): ``dist/desktop-rag/``, without
   torch, transformers, sentence-transformers, CUDA, unused Qt modules or test data; then the
   shared libraries' debugging information removed (``strip --strip-debug``, not ``--no-strip``);
4. the launcher (``desktop-rag.desktop``), the icon and ``install.sh`` added to the folder;
5. checks: no torch or CUDA library inside, no OCR engine but ONNX Runtime's, the OCR models
   inside, every shared library's dependencies found;
6. ``dist/desktop-rag-<version>-linux-x86_64.tar.gz``, and the sizes.

``--keep-torch`` builds the large variant instead (torch and sentence-transformers inside, the
default torch embedding backend), to compare sizes. Then run ``packaging/smoke_test.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from common import (
    LLM_REQ,
    MB,
    PACKAGING,
    PYINSTALLER_REQ,
    ROOT,
    TORCH_REQ,
    Failure,
    check_python,
    clean_pip_env,
    main_guard,
    mb,
    run,
    say,
    tree_size,
)

NAME = "desktop-rag"
# Goals of the issue (decimal units).
GOAL_UNPACKED = 1200 * MB
GOAL_COMPRESSED = 500 * MB
# Libraries of the desktop's graphics stack, which Qt's platform plugins (xcb, wayland, the GTK
# theme) load from the target system: a headless build machine may lack them.
DESKTOP_STACK = re.compile(
    r"lib(X|xcb|xkbcommon|wayland|gtk|gdk|glib|gobject|gio|gmodule|gthread|pango|cairo|atk|"
    r"fontconfig|freetype|dbus|harfbuzz|SM|ICE|drm|gbm|vulkan|mtdev|input|udev|EGL|GL|OpenGL)"
)
# Libraries that must not be in the lean bundle (torch, CUDA, the Hugging Face stack).
FORBIDDEN = ("libtorch", "libcuda", "libcudart", "libcublas", "libcudnn", "libnccl", "nvidia",
             "/torch/", "/transformers/", "/sentence_transformers/", "/triton/")  # fmt: skip
# Python packages that must not be in any bundle: rapidocr's other inference engines and what they
# pull in (the app runs OCR on ONNX Runtime); torch and the Hugging Face stack in the lean bundle.
FORBIDDEN_MODULES = ("paddle", "openvino", "tensorrt", "MNN", "torch_npu",
                     "rapidocr.inference_engine.pytorch", "rapidocr.inference_engine.paddle",
                     "rapidocr.inference_engine.openvino", "rapidocr.inference_engine.tensorrt",
                     "rapidocr.inference_engine.mnn")  # fmt: skip
FORBIDDEN_MODULES_LEAN = ("torch", "transformers", "sentence_transformers", "triton")
# The OCR files the app opens by path (desktop_rag.core.ingest.extract.ocr) or rapidocr reads.
OCR_FILES = ("rapidocr/config.yaml", "rapidocr/default_models.yaml",
             "rapidocr/models/PP-OCRv6_det_small.onnx", "rapidocr/models/PP-OCRv6_rec_small.onnx",
             "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx")  # fmt: skip


def version() -> str:
    """The project's version from pyproject.toml."""
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0"


def venv_stamp(wheelhouse: Path | None) -> str:
    """A digest of what the build environment is made from (to know when to rebuild it)."""
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    h.update(f"{PYINSTALLER_REQ} {TORCH_REQ} {LLM_REQ} {wheelhouse}".encode())
    if wheelhouse is not None:
        for p in sorted(wheelhouse.glob("*.whl")):
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()


def build_venv(venv: Path, python: str, wheelhouse: Path | None, fresh: bool, nice: int) -> Path:
    """Create (or reuse) the build environment; returns its Python."""
    vpy = venv / "bin" / "python"
    stamp_file = venv / ".desktop-rag-stamp"
    stamp = venv_stamp(wheelhouse)
    if not fresh and vpy.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        say(f"[1/6] build environment {venv} is up to date")
        return vpy
    source = f"from {wheelhouse}" if wheelhouse else "from the package index"
    say(f"[1/6] build environment {venv} ({source})")
    if venv.exists():
        shutil.rmtree(venv)
    check_python(python)
    run([python, "-m", "venv", venv], what="creating the build environment")
    pip = [str(vpy), "-m", "pip", "install", "--quiet"]
    if wheelhouse is not None:
        offline = ["--no-index", "--find-links", str(wheelhouse)]
        env = clean_pip_env()
        run([*pip, *offline, TORCH_REQ, ".[gui]"], env=env, cwd=ROOT, nice=nice,
            what="installing the app from the wheelhouse")  # fmt: skip
        run([*pip, *offline, "--no-deps", LLM_REQ], env=env, cwd=ROOT, nice=nice,
            what="installing the bundled chat model from the wheelhouse")  # fmt: skip
        # PyInstaller is a build tool, not part of the app's wheelhouse: from the index.
        run([*pip, PYINSTALLER_REQ], cwd=ROOT, nice=nice, what="installing PyInstaller")
    else:
        torch_index = os.environ.get("TORCH_INDEX", "").split()
        run([*pip, TORCH_REQ, *torch_index], cwd=ROOT, nice=nice, what="installing torch (CPU)")
        run([*pip, "--no-deps", LLM_REQ], cwd=ROOT, nice=nice, what="installing the chat model")
        run([*pip, ".[gui]", PYINSTALLER_REQ], cwd=ROOT, nice=nice,
            what="installing the app and PyInstaller")  # fmt: skip
    probe = run([vpy, "-c", "import torch, sysconfig; print(torch.__version__, "
                 "sysconfig.get_config_var('Py_ENABLE_SHARED'))"], capture=True,
                what="checking the build environment")  # fmt: skip
    torch_version, shared = probe.stdout.split()
    if "+cpu" not in torch_version:
        raise Failure(
            f"the build environment got torch {torch_version}, not the CPU build: pass "
            "TORCH_INDEX='--index-url <CPU wheel index>' or build the wheelhouse first"
        )
    if shared != "1":
        raise Failure(
            f"{python} was built without a shared libpython, which PyInstaller needs: use a "
            "Python 3.11 built with --enable-shared (Debian's python3.11 is)"
        )
    stamp_file.write_text(stamp)
    return vpy


def export_graph(vpy: Path, out: Path, nice: int) -> None:
    """Export the embedding model's ONNX graph into ``out`` (reused when still valid)."""
    say(f"[2/6] ONNX graph of the embedding model into {out}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run([vpy, PACKAGING / "export_onnx.py", out], env=env, cwd=ROOT, nice=nice,
        what="exporting the ONNX graph")  # fmt: skip


def pyinstaller(vpy: Path, dist: Path, work: Path, onnx: Path, keep_torch: bool, nice: int) -> Path:
    """Run PyInstaller on the spec; returns the bundle folder."""
    say("[3/6] PyInstaller (one folder)")
    env = {
        **os.environ,
        "DESKTOP_RAG_BUNDLE_ONNX": str(onnx),
        "DESKTOP_RAG_BUNDLE_TORCH": "1" if keep_torch else "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("QT_QPA_PLATFORM", None)
    t0 = time.perf_counter()
    run([vpy, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", dist, "--workpath", work, PACKAGING / "desktop-rag.spec"],
        env=env, cwd=ROOT, nice=nice, what="PyInstaller")  # fmt: skip
    say(f"PyInstaller took {time.perf_counter() - t0:.0f} s")
    bundle = dist / NAME
    if not (bundle / NAME).is_file():
        raise Failure(f"PyInstaller finished but {bundle / NAME} is missing")
    return bundle


def strip_debug(bundle: Path, nice: int) -> None:
    """Remove the debugging information (``.debug_*`` sections) some shared libraries carry:
    the Python library built on this machine, extensions built from source (hnswlib) and a few
    wheels'. Only those sections go (``strip --strip-debug``): the symbol tables, which dynamic
    linking and ctypes use, stay; the smoke test exercises every library this touches."""
    if not shutil.which("strip") or not shutil.which("readelf"):
        say("  no strip/readelf here: debugging information left in")
        return
    before = 0
    targets = []
    for p in elf_files(bundle):
        sections = subprocess.run(["readelf", "-S", "-W", str(p)], capture_output=True,
                                  text=True, check=False).stdout  # fmt: skip
        if ".debug_" in sections:
            targets.append(p)
            before += p.stat().st_size
    if not targets:
        return
    run(["strip", "--strip-debug", *targets], nice=nice, capture=True,
        what="removing debugging information")  # fmt: skip
    after = sum(p.stat().st_size for p in targets)
    say(f"  debugging information removed from {len(targets)} libraries: {mb(before - after)} "
        "less")  # fmt: skip


def add_launcher(bundle: Path) -> None:
    """The freedesktop launcher, the icon, install.sh and a README in the bundle folder."""
    say("[4/6] launcher, icon and install.sh")
    shutil.copy2(ROOT / "resources" / "icons" / "desktop-rag.svg", bundle / "desktop-rag.svg")
    template = (ROOT / "resources" / "desktop-rag.desktop").read_text(encoding="utf-8")
    # Double-clicked in the unpacked folder (%k: the launcher's own path): run the executable
    # beside it. install.sh writes a menu entry with absolute paths instead. Quoted as the
    # Desktop Entry spec asks (backslashes doubled in the value, then \" and \$ in the argument).
    exec_line = r'Exec=sh -c "exec \\"\\$(dirname \\"\\$1\\")/desktop-rag\\"" sh %k'
    local = "\n".join(
        exec_line if line.startswith("Exec=") else line for line in template.splitlines()
    )
    local += "\n"
    (bundle / "desktop-rag.desktop").write_text(local, encoding="utf-8")
    (bundle / "desktop-rag.desktop").chmod(0o755)
    shutil.copy2(PACKAGING / "bundle_install.sh", bundle / "install.sh")
    (bundle / "install.sh").chmod(0o755)
    shutil.copy2(PACKAGING / "bundle_README.txt", bundle / "README.txt")


def elf_files(bundle: Path) -> list[Path]:
    """Every ELF file (executable or shared library) in the bundle."""
    out = []
    for p in bundle.rglob("*"):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def bundled_modules(work: Path) -> set[str]:
    """The Python modules PyInstaller put into the bundle's archive (its PYZ table of contents)."""
    toc = work / NAME / "PYZ-00.toc"
    if not toc.is_file():
        raise Failure(f"{toc} not found: cannot list the bundled modules")
    return set(re.findall(r"\(\s*'([A-Za-z0-9_.]+)',", toc.read_text(encoding="utf-8")))


def check_bundle(bundle: Path, keep_torch: bool, work: Path) -> None:
    """No torch/CUDA inside (lean bundle), no other OCR engine, the OCR models and their
    configuration inside, and no unresolved shared library dependency."""
    say("[5/6] checks")
    internal = bundle / "_internal"
    modules = bundled_modules(work)
    banned = FORBIDDEN_MODULES + (() if keep_torch else FORBIDDEN_MODULES_LEAN)
    found = sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))
    if found:
        raise Failure(f"modules that must stay out got into the bundle: {found[:10]}")
    say(f"  {len(modules)} Python modules; none of {', '.join(banned)}: ok")
    needed = ["rapidocr.main", "rapidocr.inference_engine.onnxruntime", "cv2", "PIL.Image",
              "shapely", "pyclipper", "omegaconf", "openpyxl", "olefile", "pptx", "docx", "lxml",
              "desktop_rag.core.ingest.extract.ocr", "desktop_rag.core.ingest.extract.mail"]  # fmt: skip
    # a module is in the archive, or a package collected as files (cv2: its hook), or an
    # extension module (a shared library) beside it
    absent = [m for m in needed if m not in modules
              and not (internal / m.replace(".", "/") / "__init__.py").is_file()
              and not any(internal.glob(m.replace(".", "/") + ".*.so"))]  # fmt: skip
    if absent:
        raise Failure(f"modules the document formats and OCR need are missing: {absent}")
    missing_ocr = [f for f in OCR_FILES if not (internal / f).is_file()]
    if missing_ocr:
        raise Failure(f"OCR files missing from the bundle: {missing_ocr}")
    ocr_size = sum((internal / f).stat().st_size for f in OCR_FILES)
    say(f"  OCR models and configuration inside ({mb(ocr_size)}): ok")
    if not keep_torch:
        found = [str(p.relative_to(bundle)) for p in bundle.rglob("*")
                 if any(f in "/" + str(p.relative_to(bundle)) + "/" for f in FORBIDDEN)]  # fmt: skip
        if found:
            raise Failure(f"the lean bundle contains torch/CUDA files: {found[:10]}")
        say("  no torch, transformers, sentence-transformers or CUDA files: ok")
    dangling = [str(p.relative_to(bundle)) for p in bundle.rglob("*")
                if p.is_symlink() and not p.exists()]  # fmt: skip
    if dangling:
        raise Failure(f"dangling symbolic links in the bundle: {dangling[:10]}")
    tests = sorted({str(p.relative_to(bundle)) for p in bundle.rglob("tests") if p.is_dir()})
    say(f"  test folders: {tests or 'none'}")
    missing: dict[str, list[str]] = {}
    system: set[str] = set()
    glibc = (0, 0)
    elves = elf_files(bundle)
    env = {"LD_LIBRARY_PATH": str(internal), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for p in elves:
        proc = subprocess.run(["ldd", str(p)], capture_output=True, text=True, env=env, check=False)
        for line in proc.stdout.splitlines():
            if "not found" in line:
                missing.setdefault(line.split()[0], []).append(str(p.relative_to(bundle)))
            parts = line.split("=>")
            if len(parts) == 2 and str(bundle) not in parts[1]:
                system.add(parts[0].strip())
        glibc = max(glibc, _glibc_needed(p))
    desktop = {lib: users for lib, users in missing.items() if DESKTOP_STACK.match(lib)}
    missing = {lib: users for lib, users in missing.items() if lib not in desktop}
    if missing:
        details = "; ".join(f"{lib} (needed by {', '.join(sorted(users)[:3])})"
                            for lib, users in sorted(missing.items()))  # fmt: skip
        raise Failure(f"shared libraries missing from the bundle: {details}")
    say(f"  {len(elves)} ELF files, every dependency found: ok")
    if desktop:
        details = "; ".join(f"{lib} (for {', '.join(sorted(Path(u).name for u in users)[:3])})"
                            for lib, users in sorted(desktop.items()))  # fmt: skip
        say(f"  not on this build machine, from the target's desktop: {details}")
    say(f"  libraries taken from the target system: {', '.join(sorted(system))}")
    say(f"  newest glibc symbol version needed: GLIBC_{glibc[0]}.{glibc[1]}")


def _glibc_needed(path: Path) -> tuple[int, int]:
    """The newest ``GLIBC_x.y`` symbol version an ELF file needs ((0, 0) if unknown)."""
    data = path.read_bytes()
    best = (0, 0)
    for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data):
        best = max(best, (int(m.group(1)), int(m.group(2))))
    return best


def largest(bundle: Path, n: int = 12) -> list[tuple[str, int]]:
    """The ``n`` largest top-level parts of ``_internal`` (and the executable)."""
    parts: dict[str, int] = {}
    internal = bundle / "_internal"
    for p in internal.iterdir():
        parts[p.name] = tree_size(p)[0] if p.is_dir() else p.lstat().st_size
    return sorted(parts.items(), key=lambda kv: -kv[1])[:n]


def make_tarball(bundle: Path, dist: Path, level: int) -> Path:
    """``dist/desktop-rag-<version>-linux-<arch>.tar.gz`` holding the folder ``desktop-rag/``."""
    say("[6/6] tarball")
    out = dist / f"{NAME}-{version()}-linux-{platform.machine()}.tar.gz"
    tmp = out.with_suffix(".tmp")
    t0 = time.perf_counter()
    with tarfile.open(tmp, "w:gz", compresslevel=level) as tar:
        tar.add(bundle, arcname=NAME)
    os.replace(tmp, out)
    say(f"  {out.name}: {mb(out.stat().st_size)} in {time.perf_counter() - t0:.0f} s")
    return out


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="Python 3.11 for the build environment (default: this one)")  # fmt: skip
    parser.add_argument("--wheelhouse", type=Path, default=None,
                        help="install the build environment from this wheelhouse only "
                        "(default: wheelhouse/ if it holds wheels, else the package index)")  # fmt: skip
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "bundle-venv")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--fresh", action="store_true", help="recreate the build environment")
    parser.add_argument("--keep-torch", action="store_true",
                        help="the large bundle: torch and sentence-transformers inside")  # fmt: skip
    parser.add_argument("--no-tarball", action="store_true")
    parser.add_argument("--no-strip", action="store_true",
                        help="keep the debugging information of the shared libraries")  # fmt: skip
    parser.add_argument("--compresslevel", type=int, default=6, help="gzip level (1-9)")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the heavy steps")
    args = parser.parse_args()

    if sys.platform != "linux":
        raise Failure(
            "this script builds the Linux bundle; see packaging/README.md for Windows/macOS"
        )
    wheelhouse = args.wheelhouse
    if wheelhouse is None and any((ROOT / "wheelhouse").glob("*.whl")):
        wheelhouse = ROOT / "wheelhouse"
    if wheelhouse is not None and not any(wheelhouse.glob("*.whl")):
        raise Failure(f"{wheelhouse} holds no wheels: run `make wheelhouse` first")
    free = shutil.disk_usage(ROOT).free
    if free < 8 * 1024**3:
        raise Failure(
            f"only {free / 1024**3:.1f} GiB free under {ROOT}; the build needs about 8 GiB"
        )

    t_start = time.perf_counter()
    build = ROOT / "build"
    vpy = build_venv(args.venv, args.python, wheelhouse, args.fresh, args.nice)
    onnx = build / "onnx-cache"
    if args.keep_torch:
        say("[2/6] --keep-torch: no ONNX graph (the bundle embeds with torch)")
    else:
        export_graph(vpy, onnx, args.nice)
    bundle = pyinstaller(vpy, args.dist, build / "pyinstaller", onnx, args.keep_torch, args.nice)
    if not args.no_strip:
        strip_debug(bundle, args.nice)
    add_launcher(bundle)
    check_bundle(bundle, args.keep_torch, build / "pyinstaller")
    size, files = tree_size(bundle)
    tarball = None if args.no_tarball else make_tarball(bundle, args.dist, args.compresslevel)

    say("")
    kind = "with torch" if args.keep_torch else "lean: ONNX embeddings, no torch"
    say(f"bundle:   {bundle} ({kind})")
    say(f"unpacked: {mb(size)} in {files} files (goal < {mb(GOAL_UNPACKED)})")
    if tarball is not None:
        tsize = tarball.stat().st_size
        say(f"tarball:  {tarball} {mb(tsize)} (goal < {mb(GOAL_COMPRESSED)})")
    say("largest parts of _internal: " + ", ".join(f"{k} {mb(v)}" for k, v in largest(bundle)))
    say(f"built in {time.perf_counter() - t_start:.0f} s; next: python3 packaging/smoke_test.py")
    over = size > GOAL_UNPACKED or (
        tarball is not None and tarball.stat().st_size > GOAL_COMPRESSED
    )
    if over:
        say("warning: the bundle is over the size goal")
    return 0


if __name__ == "__main__":
    main_guard(main)
