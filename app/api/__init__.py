"""HTTP routes mounted beside Reflex's own backend."""
