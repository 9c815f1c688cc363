"""Search: from a question to ranked, checked sources.

``retrieval`` (dense + BM25 candidates fused and reranked), ``evidence`` (the lexical features
and BM25 of the reranker), ``selection`` (the evidence sentences shown with an answer),
``claims`` (the check of an answer's claims against its sources) and ``thresholds`` (when to
abstain). May import: index, embed,
text and the shared modules; never generate or a client.
"""
