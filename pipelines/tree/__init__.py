"""Capability trees (EvalTree): annotate -> embed -> cluster recursively -> describe -> store."""
