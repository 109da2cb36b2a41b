"""ASGI server comparison (python -m bench.servers.run)."""
