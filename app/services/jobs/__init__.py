"""Cutout jobs: their status and owner, their files, and the worker pool that runs them."""
