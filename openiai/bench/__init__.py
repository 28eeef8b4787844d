"""Benchmarks (``openiai bench ...``). Nothing here is imported by the server."""
