"""Benchmark suites: each expands a config into runs and writes the result tables."""
