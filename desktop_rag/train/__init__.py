"""Adapter training (optional: needs the ``train`` extra, ``pip install desktop-rag[train]``).

``lora`` trains a LoRA adapter on the bundled model and writes it as a GGUF adapter;
``style_examples`` generates the examples of the bundled answer style. Used by
``desktop-rag adapters train`` and packaging/build_style_adapter.py only; the app and its bundle never
import it.
"""
