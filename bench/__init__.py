"""Benchmark harness: every session stack side by side on one machine (`python -m bench.run`)."""
