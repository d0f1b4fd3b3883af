"""Cutout: background removal as a self-hostable web service."""
