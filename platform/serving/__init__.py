"""Serving CrossDiff outside the platform's jobs: the MLflow pyfunc (models from code)."""
