"""Slipway's `docker` CLI. Standard library only: it runs inside node images, so nothing here
imports the rest of `simulator` or any third-party package."""
