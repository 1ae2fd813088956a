"""arenatree pipelines: everything that computes (store, ingest, trees, ratings, audits, reports)."""

__version__ = "0.1.0"
