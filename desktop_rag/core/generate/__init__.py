"""Generate: answers from a local GGUF model.

``llm`` (the ``LocalLLM`` a single worker owns), ``native`` (llama.cpp's log and constructor),
``llm_weights`` (the faster F16 copy of a small quantized model), ``gguf`` (reading and importing
GGUF files), ``chat_template`` (shared with adapter training), ``prompting`` (sources packed into
the context window) and ``adapters`` (LoRA adapter files). May import: text and the shared
modules; never search, ingest, index or a client.
"""
