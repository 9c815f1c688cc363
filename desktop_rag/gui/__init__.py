"""The PySide6 desktop app: a thin layer of widgets, item models and workers over the core engine."""
