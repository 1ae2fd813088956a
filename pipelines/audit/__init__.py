"""Voter-bias audit: each audit a function of encoded votes returning a Finding (see result.py)."""
