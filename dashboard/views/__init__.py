"""Dashboard pages: each a short script over :mod:`dashboard.data` helpers."""
