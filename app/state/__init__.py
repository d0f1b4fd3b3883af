"""Reflex states: thin; they read the request, call a service and set vars."""
