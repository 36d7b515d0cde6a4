"""Benchmarks: each module measures one target from the issues and reports figures."""
