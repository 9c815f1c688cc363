"""The hnswlib vector index: a cache of the embeddings in SQLite, rebuilt when missing or stale.

Labels are chunk ids. Inner product is equal to cosine similarity on normalised vectors, so the
index uses the ``ip`` space and similarity = 1 - distance.

On disk: ``vectors/index.bin`` and ``vectors/manifest.json`` (model identity, dim, count, the store's
``vectors_version`` it reflects, and the sha256 of ``index.bin``). Both are written atomically (temp
file, fsync, rename, fsync of the folder). On load, any disagreement (missing file, checksum,
identity, count or version) means the file is not handed to hnswlib; the index is rebuilt from the
embeddings in SQLite without re-embedding anything.

Locking: hnswlib allows concurrent queries, but not a query concurrent with an add or delete.
A readers-writer lock lets many searches run at once and gives writers exclusive access.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_rag.core.embed.identity import EmbeddingIdentity
from desktop_rag.core.files import atomic_write, fsync_dir, sha256_file

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from desktop_rag.core.index.store import Store

log = logging.getLogger(__name__)

# hnswlib construction parameters: M=16, ef_construction=200 are hnswlib's recommended defaults
# for recall > 0.95 (see hnswlib ALGO_PARAMS.md); ef at query time is raised with k.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


class RWLock:
    """A readers-writer lock: many readers or one writer; waiting writers block new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusive."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class VectorIndex:
    """An in-memory hnswlib index over the store's embeddings, persisted in ``folder``."""

    def __init__(self, folder: Path, identity: EmbeddingIdentity) -> None:
        self.folder = Path(folder)
        self.identity = identity
        self.lock = RWLock()
        self._index: Any = None
        self._version = -1  # the store version the in-memory index reflects
        self._dirty = False
        self._live = 0

    @property
    def index_file(self) -> Path:
        """The hnswlib binary file."""
        return self.folder / "index.bin"

    @property
    def manifest_file(self) -> Path:
        """The JSON manifest beside the index file."""
        return self.folder / "manifest.json"

    def __len__(self) -> int:
        """The number of live (not deleted) vectors."""
        with self.lock.read():
            return self._live

    def _new_index(self, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.identity.dim)
        index.init_index(
            max_elements=max(capacity, 1024),
            ef_construction=HNSW_EF_CONSTRUCTION,
            M=HNSW_M,
            allow_replace_deleted=True,
        )
        index.set_ef(HNSW_EF_SEARCH)
        return index

    # -- load / rebuild ----------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def ensure(self, store: Store) -> str:
        """Make the in-memory index match the store; returns "current", "loaded" or "rebuilt".

        Loads ``index.bin`` only if its manifest matches the model, the store's version and chunk
        count, and the file's sha256; otherwise rebuilds from SQLite (and saves).
        """
        version = store.vectors_version()
        with self.lock.read():  # the fast path of every search: shared, searches never queue
            if self._index is not None and self._version == version:
                return "current"
        with self.lock.write():
            if self._index is not None and self._version == version:  # another thread did it
                return "current"
            count = store.chunk_count()
            manifest = self._read_manifest()
            reason = self._manifest_problem(manifest, version, count)
            if reason is None:
                try:
                    import hnswlib

                    index = hnswlib.Index(space="ip", dim=self.identity.dim)
                    index.load_index(
                        str(self.index_file),
                        max_elements=max(count, 1024),
                        allow_replace_deleted=True,
                    )
                    index.set_ef(HNSW_EF_SEARCH)
                    self._index, self._version, self._dirty = index, version, False
                    self._live = count
                    return "loaded"
                except Exception as exc:  # checksum passed but hnswlib refused: rebuild
                    reason = f"hnswlib could not load it ({exc})"
            log.info("rebuilding the vector index from SQLite: %s", reason)
            self._rebuild_locked(store, count, version)
        self.save(store)
        return "rebuilt"

    def _manifest_problem(
        self, manifest: dict[str, Any] | None, version: int, count: int
    ) -> str | None:
        if manifest is None:
            return "no manifest"
        if not self.index_file.exists():
            return "no index file"
        if manifest.get("model") != self.identity.to_dict():
            return "built with another embedding model"
        if manifest.get("dim") != self.identity.dim or manifest.get("count") != count:
            return "count or dimension differs from SQLite"
        if manifest.get("vectors_version") != version:
            return "older than SQLite"
        if manifest.get("sha256") != sha256_file(self.index_file):
            return "checksum mismatch (corrupt or partly written file)"
        return None

    def _rebuild_locked(self, store: Store, count: int, version: int) -> None:
        index = self._new_index(count)
        for ids, vecs in store.iter_embeddings():
            index.add_items(vecs, ids, num_threads=1)
        self._index, self._version, self._dirty = index, version, True
        self._live = count

    # -- updates -----------------------------------------------------------------------------
    def apply(
        self,
        added_ids: list[int],
        vectors: NDArray[np.float32],
        removed_ids: list[int],
        version: int,
    ) -> None:
        """Mirror one committed store transaction: add ``vectors`` ``(n, dim)`` under
        ``added_ids`` and delete ``removed_ids``; ``version`` is the store's version after it."""
        with self.lock.write():
            if self._index is None:
                self._index = self._new_index(len(added_ids))
            index = self._index
            for cid in removed_ids:
                with contextlib.suppress(RuntimeError):  # already deleted or never added
                    index.mark_deleted(int(cid))
                    self._live -= 1
            if added_ids:
                need = index.get_current_count() + len(added_ids)
                if need > index.get_max_elements():
                    index.resize_index(max(need, int(index.get_max_elements() * 1.5)))
                index.add_items(
                    vectors,
                    np.asarray(added_ids, dtype=np.int64),
                    num_threads=1,
                    replace_deleted=True,
                )
                self._live += len(added_ids)
            self._version, self._dirty = version, True

    def save(self, store: Store) -> None:
        """Write the index and its manifest atomically if they changed since the last save."""
        with self.lock.read():
            if self._index is None or not self._dirty:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f"index.bin.tmp{os.getpid()}"
            self._index.save_index(str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            digest = sha256_file(tmp)
            count = self._live
            version = self._version
        os.replace(tmp, self.index_file)
        fsync_dir(self.folder)
        manifest = {
            "model": self.identity.to_dict(),
            "dim": self.identity.dim,
            "count": count,
            "vectors_version": version,
            "sha256": digest,
            "space": "ip",
            "M": HNSW_M,
        }
        atomic_write(self.manifest_file, json.dumps(manifest, indent=1).encode())
        self._dirty = False

    def labels(self) -> list[int]:
        """The chunk ids held and not deleted (one lookup per label: for consistency checks)."""
        with self.lock.read():
            if self._index is None:
                return []
            live = []
            for label in self._index.get_ids_list():
                try:
                    self._index.get_items([label])
                except RuntimeError:  # marked deleted
                    continue
                live.append(int(label))
            return live

    # -- search ------------------------------------------------------------------------------
    def search(
        self,
        query: NDArray[np.float32],
        k: int,
        allowed: Callable[[int], bool] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks to ``query`` ``(dim,)``: (chunk id, cosine similarity), best
        first; with ``allowed`` (chunk id -> bool) only chunks it accepts, filtered inside the
        graph search (hnswlib's ``filter=``; fast while most chunks pass, see hnswlib #417)."""
        with self.lock.read():
            if self._index is None:
                return []
            n = self._live
            # Clamp k to the element count: hnswlib errors when k exceeds it.
            k = min(k, n)
            while k > 0:
                try:
                    labels, dists = self._index.knn_query(
                        query.reshape(1, -1), k=k, num_threads=1, filter=allowed
                    )
                    break
                except RuntimeError:  # fewer than k live elements (some are deleted)
                    k //= 2
            else:
                return []
        return [(int(lbl), float(1.0 - d)) for lbl, d in zip(labels[0], dists[0], strict=True)]
