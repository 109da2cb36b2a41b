"""Run the demo as many workers behind nginx: locally (deploy.cluster) or with docker compose."""
