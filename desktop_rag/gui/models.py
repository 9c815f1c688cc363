"""Qt item models the panels display: collections, files with problems, sources, conversations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from desktop_rag.core.conversations import ConversationInfo
from desktop_rag.core.index.store import CollectionRow
from desktop_rag.core.text.citations import label_of
from desktop_rag.core.types import FileResult

Index = QModelIndex | QPersistentModelIndex
PathRole = Qt.ItemDataRole.UserRole + 1
IdRole = Qt.ItemDataRole.UserRole + 2


class _ListModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[Any] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def set_items(self, items: list[Any]) -> None:
        """Replace every row."""
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()


class CollectionsModel(_ListModel):
    """Indexed folders with counts; the check box says whether questions search it."""

    def __init__(self) -> None:
        super().__init__()
        self.unchecked: set[int] = set()
        self.status: dict[int, str] = {}

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        c: CollectionRow = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            status = self.status.get(c.id, "")
            line = f"{c.name}\n{c.indexed} files · {c.chunks} chunks"
            if c.problems:
                line += f" · {c.problems} not indexed"
            return line + (f" · {status}" if status else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{c.root}\nChecked: questions search this folder."
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Unchecked if c.id in self.unchecked else Qt.CheckState.Checked
        if role == PathRole:
            return c.root
        if role == IdRole:
            return c.id
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsUserCheckable

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or not index.isValid():
            return False
        cid = self.items[index.row()].id
        if Qt.CheckState(value) == Qt.CheckState.Checked:
            self.unchecked.discard(cid)
        else:
            self.unchecked.add(cid)
        self.dataChanged.emit(index, index, [role])
        return True

    def searched_ids(self) -> list[int] | None:
        """Collection ids to search (None = all, when nothing is unchecked)."""
        if not self.unchecked:
            return None
        return [c.id for c in self.items if c.id not in self.unchecked]

    def set_status(self, collection_id: int, status: str) -> None:
        """A short status shown after the counts ("indexing", "paused", ...)."""
        self.status[collection_id] = status
        for row, c in enumerate(self.items):
            if c.id == collection_id:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx)


class ProblemsModel(_ListModel):
    """Files that were skipped or failed, each with its human reason."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        f: FileResult = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{Path(f.path).name}: {f.reason}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{f.path}\n{f.status}: {f.reason}"
        if role == PathRole:
            return f.path
        return None

    def upsert(self, result: FileResult) -> None:
        """Add or replace the row of ``result.path``; an indexed file's row is removed."""
        for row, f in enumerate(self.items):
            if f.path == result.path:
                if result.status in ("skipped", "failed"):
                    self.items[row] = result
                    self.dataChanged.emit(self.index(row), self.index(row))
                else:
                    self.beginRemoveRows(QModelIndex(), row, row)
                    del self.items[row]
                    self.endRemoveRows()
                return
        if result.status in ("skipped", "failed"):
            self.beginInsertRows(QModelIndex(), len(self.items), len(self.items))
            self.items.append(result)
            self.endInsertRows()


class SourcesModel(_ListModel):
    """The numbered sources of the answer on screen (citation JSON objects)."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s: dict[str, Any] = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            cited = "  ✓ cited" if s.get("cited") else ""
            snippet = " ".join(str(s.get("text", "")).split())[:160]
            return f"[{s['n']}] {label_of(s)} · score {s['score']:.2f}{cited}\n{snippet}…"
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(s.get("file"))
        return None


class ConversationsModel(_ListModel):
    """Saved conversations, most recent first."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        c: ConversationInfo = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{c.title}\n{time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}"
        if role == IdRole:
            return c.id
        return None
