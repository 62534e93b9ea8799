"""Slipway's web UI: the Django project and its app."""
