"""Benchmarks: the real service on 127.0.0.1, measured against references in the same run.

Each benchmark is a module with a ``main(argv)``; ``python -m benchmarks`` runs them all.
"""
