"""Whole-document tasks beyond one question: summarise a document, a folder or an answer's
sources (:mod:`.summarize`), compare two documents (:mod:`.compare`). They sit above the engine
(they use its store, embedder and model) and below the CLI and the window."""
