"""Indexing a folder: scan, extract, chunk, embed and store, incrementally and resumably.

A run lists the folder, then for each file decides by size+mtime and content hash (sha256) whether
it changed. Unchanged files are not re-extracted or re-embedded, unless another extractor or
chunker made them (:meth:`Indexer.pipeline`): a new extractor version extracts the file again; new
chunker settings alone cut its stored pages again (no extraction). Either way a chunk whose context
and text come out the same keeps its stored embedding. After the files, stored lexical analyses of
an older :data:`~desktop_rag.core.search.evidence.ANALYSIS_VERSION` are recomputed
(:meth:`~desktop_rag.core.index.store.Store.refresh_analyses`). Each changed file is committed in
its own transaction after embedding, so an interrupted run resumes at the first file not committed.
Files of the collection that are gone from disk are removed. Extraction of the next file runs in a
background thread while the current one is embedded (extraction and embedding overlap); the engine
has it done in a child process (:mod:`desktop_rag.core.ingest.sandbox`), so a parser that hangs or crashes
only fails that file.

Only one process indexes into a data directory at a time (an exclusive lock on ``index.lock``:
``flock`` on POSIX, ``msvcrt.locking`` on Windows); readers are never blocked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.errors import Cancelled, ExtractionError, IndexBusyError, UnsupportedFileError
from desktop_rag.core.files import sha256_file, try_lock, unlock
from desktop_rag.core.formats import file_kind
from desktop_rag.core.index.store import FileRow, Store
from desktop_rag.core.index.vectors import VectorIndex
from desktop_rag.core.ingest.chunking import Chunker, embedding_text
from desktop_rag.core.ingest.extract import EXTRACTOR_VERSIONS, OCR_KINDS, extract
from desktop_rag.core.text.filings import detect_genre
from desktop_rag.core.types import CancelToken, Chunk, Document, FileResult, IndexSummary, Progress

log = logging.getLogger(__name__)

EMBED_BATCH = 64  # chunks per embedding call between cancel checks
SAVE_EVERY_S = 60.0  # save the vector index at least this often during a long run


@contextlib.contextmanager
def writer_lock(lock_file: Path) -> Iterator[None]:
    """Hold the data directory's exclusive indexing lock.

    Raises:
        IndexBusyError: another process is indexing.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as f:
        try:
            try_lock(f.fileno())
        except OSError:  # BlockingIOError (POSIX), PermissionError (Windows)
            raise IndexBusyError(
                "another desktop-rag process is indexing into this data folder",
                hint="wait for it to finish, or stop it",
            ) from None
        try:
            yield
        finally:
            unlock(f.fileno())


@dataclass
class _Candidate:
    path: Path
    collection_id: int
    size: int
    mtime_ns: int
    row: FileRow | None


@dataclass
class _Extracted:
    doc: Document | None = None
    chunks: list[Chunk] | None = None
    error: ExtractionError | None = None
    sha256: str = ""
    stored: bool = False  # doc is the stored one, cut again with new chunker settings
    extract_s: float = 0.0  # hashing and parsing
    chunk_s: float = 0.0


def list_folder(root: Path) -> tuple[list[Path], list[FileResult]]:
    """Regular files under ``root`` (hidden files and folders left out), and problems found.

    Symbolic links are followed only when they stay inside ``root``.
    """
    files: list[Path] = []
    problems: list[FileResult] = []
    real_root = root.resolve()

    def onerror(err: OSError) -> None:
        problems.append(
            FileResult(str(err.filename), "failed", f"cannot open folder: {err.strerror}")
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith((".", "~$")):
                continue
            p = Path(dirpath) / name
            if not _encodable(str(p)):
                problems.append(
                    FileResult(
                        os.fsencode(p).decode("utf-8", "replace"),
                        "skipped",
                        "the file or folder name is not valid UTF-8 (rename it to index it)",
                    )
                )
                continue
            if p.is_symlink():
                try:
                    target = p.resolve(strict=True)
                except (OSError, RuntimeError):
                    problems.append(FileResult(str(p), "skipped", "broken symbolic link"))
                    continue
                if not target.is_relative_to(real_root):
                    problems.append(
                        FileResult(
                            str(p),
                            "skipped",
                            "symbolic link pointing outside the folder (not followed)",
                        )
                    )
                    continue
            try:
                if not p.is_file():
                    problems.append(FileResult(str(p), "skipped", "not a regular file"))
                    continue
            except OSError as exc:
                problems.append(FileResult(str(p), "failed", f"cannot read: {exc.strerror}"))
                continue
            files.append(p)
    return files, problems


def _encodable(text: str) -> bool:
    """False for names holding undecodable bytes (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Indexer:
    """Runs indexing for an :class:`~desktop_rag.core.engine.Engine`."""

    def __init__(
        self,
        store: Store,
        vectors: VectorIndex,
        embedder: Embedder,
        chunker: Chunker,
        lock_file: Path,
        extract: Callable[..., Document] = extract,
        *,
        ocr: bool = True,
    ) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.chunker = chunker
        self.lock_file = lock_file
        # The engine passes ExtractionSandbox.extract: parsing in a child process. Either takes
        # the keywords ``ocr`` and ``on_ocr_page`` of extract.extract.
        self.extract = extract
        self.ocr = ocr
        # OCR progress of the file being extracted (written by the prefetch thread):
        # (file name, pages done, pages to recognise); pages and seconds of the whole run.
        self._ocr_state: tuple[str, int, int] | None = None
        self._ocr_pages = 0
        self._ocr_s = 0.0

    def run(
        self, paths: list[Path], cancel: CancelToken | None = None
    ) -> Generator[Progress, None, IndexSummary]:
        """Index ``paths`` (folders become collections; single files join their folder's collection).

        Yields a :class:`Progress` after each file; returns an :class:`IndexSummary`. Cancelling
        stops after the current batch; everything committed so far is kept.
        """
        cancel = cancel or CancelToken()
        with writer_lock(self.lock_file):
            self.store.check_identity(self.embedder.identity)
            self.store.record_index_settings(self.settings())
            self.vectors.ensure(self.store)
            summary = IndexSummary()
            self._ocr_pages, self._ocr_s, self._ocr_state = 0, 0.0, None
            t0 = time.perf_counter()
            forward0 = self.embedder.forward_s
            try:
                yield from self._run_locked(paths, cancel, summary, t0)
            except Cancelled:
                summary.cancelled = True
            finally:
                t_save = time.perf_counter()
                self.vectors.save(self.store)
                summary.vectors_s += time.perf_counter() - t_save
                summary.elapsed_s = time.perf_counter() - t0
                summary.embed_s = self.embedder.forward_s - forward0
                summary.ocr_pages, summary.ocr_s = self._ocr_pages, self._ocr_s
            return summary

    def _plan(self, paths: list[Path], summary: IndexSummary) -> list[_Candidate]:
        todo: list[_Candidate] = []
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.exists():
                summary.problems.append(FileResult(str(path), "failed", "no such file or folder"))
                continue
            path = path.resolve()
            if path.is_dir():
                root, files = path, None
            else:
                root, files = path.parent, [path]
            cid = self.store.add_collection(root)
            known = {r.path: r for r in self.store.files(cid)}
            if files is None:
                files, problems = list_folder(root)
                summary.problems.extend(problems)
                on_disk = {str(f.resolve()) for f in files}
                for p, row in known.items():
                    if p not in on_disk:
                        removed = self.store.remove_file(row.id)
                        self.vectors.apply(
                            [], _empty(self.embedder.dim), removed, self.store.vectors_version()
                        )
                        summary.removed += 1
            for f in files:
                try:
                    st = f.stat()
                except OSError as exc:
                    summary.problems.append(
                        FileResult(str(f), "failed", f"cannot read: {exc.strerror}")
                    )
                    continue
                rp = str(f.resolve())
                todo.append(_Candidate(Path(rp), cid, st.st_size, st.st_mtime_ns, known.get(rp)))
        return todo

    def pipeline(self, path: Path) -> str:
        """What turns ``path`` into chunks: its extractor's version
        (:data:`~desktop_rag.core.ingest.extract.EXTRACTOR_VERSIONS`) and the chunker's settings
        (:meth:`~desktop_rag.core.ingest.chunking.ChunkerConfig.fingerprint`). Stored with each file; a
        file indexed by another pipeline is extracted and chunked again, even if unchanged."""
        kind = file_kind(path) or ""
        ocr = "+ocr" if self.ocr and kind in OCR_KINDS else ""
        return f"{kind}-{EXTRACTOR_VERSIONS.get(kind, 1)}{ocr}/{self.chunker.config.fingerprint()}"

    def settings(self) -> dict[str, object]:
        """What makes this index's chunks, recorded at index level in ``meta.index_settings``
        (``desktop-rag status --json`` shows it): the embedding model's name, the chunker's
        settings (sizes in word pieces) and fingerprint, the extractor versions, whether scanned
        pages are recognised (OCR), the stored analysis version and the schema version."""
        from dataclasses import asdict

        from desktop_rag.core.index.store import SCHEMA_VERSION
        from desktop_rag.core.text.analysis import ANALYSIS_VERSION

        return {
            "embedding_model": self.embedder.identity.name,
            "chunker": asdict(self.chunker.config),
            "chunker_fingerprint": self.chunker.config.fingerprint(),
            "extractor_versions": dict(sorted(EXTRACTOR_VERSIONS.items())),
            "ocr": self.ocr,
            "analysis_version": ANALYSIS_VERSION,
            "schema_version": SCHEMA_VERSION,
        }

    def _current(self, row: FileRow, path: Path) -> bool:
        """Whether an unchanged file's stored outcome can stay: an indexed file needs the current
        :meth:`pipeline`; a skipped or failed one keeps its reason while the extraction part of
        the pipeline that judged it is current (a new extractor, or OCR turned on, tries it
        again: a scanned PDF skipped for having no text is then recognised)."""
        if row.status == "indexed":
            return row.pipeline == self.pipeline(path)
        return self._same_extraction(row, path)

    def _same_extraction(self, row: FileRow, path: Path) -> bool:
        """Whether ``row`` was judged by the current extraction part of :meth:`pipeline` (its
        extractor's version and OCR on or off; the chunker's part may differ)."""
        return (row.pipeline or "").split("/", 1)[0] == self.pipeline(path).split("/", 1)[0]

    def _rechunk_only(self, row: FileRow, path: Path) -> bool:
        """Whether an unchanged, indexed file differs from the current :meth:`pipeline` in its
        chunker settings only, so its stored pages can be cut again without extracting it."""
        return row.status == "indexed" and bool(row.pipeline) and self._same_extraction(row, path)

    def _ocr_progress(self, path: Path, cancel: CancelToken) -> Callable[[int, int], None]:
        """The ``on_ocr_page`` callback for extracting ``path``: records the page for the
        progress events and the run's totals, and stops the file when the run is cancelled."""
        last = time.perf_counter()

        def on_page(done: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if done:  # 0: recognition is starting
                self._ocr_pages += 1
                self._ocr_s += now - last
            last = now
            self._ocr_state = (path.name, done, total)
            cancel.raise_if_cancelled()

        return on_page

    def _prepare(self, cand: _Candidate, cancel: CancelToken) -> _Extracted:
        """Hash, extract and chunk one file (runs in the prefetch thread)."""
        out = _Extracted()
        kind = file_kind(cand.path)
        if kind is None:  # do not read (or hash) files we will not index
            suffix = cand.path.suffix.lower() or "(no extension)"
            out.error = UnsupportedFileError(f"unsupported file type {suffix}")
            return out
        t0 = time.perf_counter()
        try:
            out.sha256 = sha256_file(cand.path)
            row = cand.row
            if row is not None and row.sha256 == out.sha256 and row.status != "failed":
                if self._current(row, cand.path):
                    return out  # content unchanged: nothing to extract
                if self._rechunk_only(row, cand.path):  # new chunker settings only
                    out.doc = self.store.stored_document(row.id)  # None: pages without headings
                    out.stored = out.doc is not None
            if out.doc is None:
                out.doc = self.extract(
                    cand.path, ocr=self.ocr, on_ocr_page=self._ocr_progress(cand.path, cancel)
                )
            t1 = time.perf_counter()
            out.extract_s = t1 - t0
            out.chunks = self.chunker.chunk_document(out.doc)
            out.chunk_s = time.perf_counter() - t1
        except ExtractionError as exc:
            out.error = exc
        except Cancelled:
            raise
        except OSError as exc:
            out.error = ExtractionError(f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # never let one file stop the run
            log.exception("unexpected error preparing %s", cand.path)
            out.error = ExtractionError(f"unexpected error: {exc}")
        return out

    def _run_locked(
        self, paths: list[Path], cancel: CancelToken, summary: IndexSummary, t0: float
    ) -> Iterator[Progress]:
        todo = self._plan(paths, summary)
        # The fast path: same size and mtime as when indexed means unchanged (as git and rsync do).
        work: list[_Candidate] = []
        for cand in todo:
            row = cand.row
            if (
                row is not None
                and row.size == cand.size
                and row.mtime_ns == cand.mtime_ns
                and self._current(row, cand.path)
            ):
                summary.unchanged += 1
                if row.status in ("failed", "skipped"):
                    summary.problems.append(FileResult(row.path, row.status, row.reason))  # type: ignore[arg-type]
            else:
                work.append(cand)
        summary.files_total = len(todo)
        done = summary.unchanged
        yield Progress(done, len(todo), 0, time.perf_counter() - t0)
        last_save = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract") as pool:
            pending: Future[_Extracted] | None = (
                pool.submit(self._prepare, work[0], cancel) if work else None
            )
            for i, cand in enumerate(work):
                cancel.checkpoint()
                assert pending is not None
                shown = None
                while True:  # waiting for the file's extraction: report its OCR pages
                    try:
                        prepared = pending.result(timeout=0.25)
                    except FutureTimeout:
                        prepared = None
                    state = self._ocr_state
                    if state is not None and state != shown:
                        shown = state
                        yield Progress(done, len(todo), summary.chunks_added,
                                       time.perf_counter() - t0,
                                       f"{state[0]}: recognising text (OCR), {state[1]} of "
                                       f"{state[2]} pages done", ocr_pages=self._ocr_pages,
                                       file_fraction=state[1] / max(1, state[2]))  # fmt: skip
                    if prepared is not None:
                        break
                self._ocr_state = None
                pending = (pool.submit(self._prepare, work[i + 1], cancel)
                           if i + 1 < len(work) else None)  # fmt: skip
                summary.extract_s += prepared.extract_s
                summary.chunk_s += prepared.chunk_s
                try:
                    result = self._commit(cand, prepared, cancel, summary)
                except Cancelled:
                    raise
                except Exception as exc:  # one file must never stop the run
                    log.exception("could not store %s", cand.path)
                    result = FileResult(str(cand.path), "failed", f"could not be stored: {exc}")
                finally:
                    if cancel.cancelled and pending is not None:
                        pending.cancel()
                done += 1
                if result.status == "indexed":
                    summary.indexed += 1
                    summary.chunks_added += result.chunks
                    summary.pages += result.pages
                elif result.status == "unchanged":
                    summary.unchanged += 1
                else:
                    summary.problems.append(result)
                yield Progress(
                    done,
                    len(todo),
                    summary.chunks_added,
                    time.perf_counter() - t0,
                    cand.path.name,
                    result,
                    ocr_pages=self._ocr_pages,
                )
                if time.perf_counter() - last_save > SAVE_EVERY_S:
                    t_save = time.perf_counter()
                    self.vectors.save(self.store)
                    last_save = time.perf_counter()
                    summary.vectors_s += last_save - t_save
        # Stored analyses of an older version: recomputed from the stored text (no extraction,
        # no embedding), one short transaction per batch; stale ones are not used meanwhile.
        for n, total in self.store.refresh_analyses():
            cancel.checkpoint()
            yield Progress(done, len(todo), summary.chunks_added, time.perf_counter() - t0,
                           f"updating the stored search analyses: {n} / {total} chunks")  # fmt: skip

    def _commit(
        self, cand: _Candidate, prep: _Extracted, cancel: CancelToken, summary: IndexSummary
    ) -> FileResult:
        path = str(cand.path)
        if prep.error is not None:
            status = "skipped" if isinstance(prep.error, UnsupportedFileError) else "failed"
            removed = self.store.mark_file(
                collection_id=cand.collection_id,
                path=path,
                size=cand.size,
                mtime_ns=cand.mtime_ns,
                sha256=prep.sha256 or None,
                status=status,
                reason=prep.error.message,
                pipeline=self.pipeline(cand.path),
            )
            if removed:
                self.vectors.apply(
                    [], _empty(self.embedder.dim), removed, self.store.vectors_version()
                )
            return FileResult(path, status, prep.error.message)  # type: ignore[arg-type]
        if prep.doc is None:  # same content hash: only the mtime changed
            assert cand.row is not None
            self.store.touch_file(cand.row.id, cand.size, cand.mtime_ns)
            if cand.row.status == "skipped":
                return FileResult(path, "skipped", cand.row.reason)
            return FileResult(path, "unchanged")
        chunks = prep.chunks or []
        import numpy as np

        # A chunk cut again with the same context and text keeps its embedding (same model).
        known = self.store.file_embeddings(cand.row.id) if cand.row is not None else {}
        vecs = np.zeros((len(chunks), self.embedder.dim), dtype=np.float32)
        todo = []
        for i, c in enumerate(chunks):
            vec = known.get((c.context, c.text))
            if vec is not None and vec.shape[0] == vecs.shape[1]:
                vecs[i] = vec
            else:
                todo.append(i)
        texts = [embedding_text(chunks[i]) for i in todo]
        for s in range(0, len(texts), EMBED_BATCH):
            cancel.checkpoint()
            vecs[todo[s : s + EMBED_BATCH]] = self.embedder.embed(
                texts[s : s + EMBED_BATCH], cancel=cancel
            )
        if len(todo) < len(chunks) or prep.stored:
            log.info("%s: %s, %d of %d chunks kept their embedding", path,
                     "stored pages cut again" if prep.stored else "extracted again",
                     len(chunks) - len(todo), len(chunks))  # fmt: skip
        genre, basis = prep.doc.genre, prep.doc.genre_basis
        if genre is None:  # an extractor that does not detect it itself (all but PDF)
            genre, basis = detect_genre(p.text for p in prep.doc.pages)
        t0 = time.perf_counter()
        added, removed = self.store.write_file(
            collection_id=cand.collection_id,
            path=path,
            size=cand.size,
            mtime_ns=cand.mtime_ns,
            sha256=prep.sha256,
            kind=prep.doc.kind,
            title=prep.doc.title,
            pages=prep.doc.pages,
            chunks=chunks,
            embeddings=vecs,
            pipeline=self.pipeline(cand.path),
            genre=genre,
            genre_basis=basis,
        )
        t1 = time.perf_counter()
        self.vectors.apply(added, vecs, removed, self.store.vectors_version())
        summary.store_s += t1 - t0
        summary.vectors_s += time.perf_counter() - t1
        return FileResult(path, "indexed", chunks=len(chunks), pages=len(prep.doc.pages))


def _empty(dim: int):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.zeros((0, dim), dtype=np.float32)
