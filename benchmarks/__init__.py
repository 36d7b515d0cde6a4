"""Benchmarks: each module measures one target from the issues and reports figures."""

PSEUDONYM_KEY = "benchmark-pseudonym-key-0123456789"
"""The pseudonym key of every benchmark's clinic: fixed, so runs are alike."""
