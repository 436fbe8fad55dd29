"""The audit archive: the index and its hash chain (:mod:`.index`), the run-folder writer
(:mod:`.writer`), files and manifests (:mod:`.files`), recorded results (:mod:`.results`).

This package's ``__init__`` imports nothing heavy: ``fedcloud runs ...`` reads the index
without importing nbformat (the writer imports it, and only runs need the writer).
"""
