"""Text: pure analysis with no I/O and no models, shared by every layer above.

``analysis`` (tokens, folding, stop words, stems, the stored analysis, the FTS5 query, BM25
IDF), ``citations`` (the ``[n]`` markers and source labels), ``periods`` (fiscal periods in
questions and file names) and ``statements`` (financial statement titles and line items).
"""
