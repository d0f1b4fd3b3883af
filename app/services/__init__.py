"""The business, plain Python: domain services that take a session and never commit."""
