"""Archive discovery and ingest: find PAN/MS scenes (local or S3), check them, write a tile manifest.

Entry points: :func:`discovery.discover` (what is in an archive),
:func:`ingest.ingest_archive` (the ``crossdiff ingest`` job) and
:func:`manifest.read_manifest` (what later stages read).
"""
