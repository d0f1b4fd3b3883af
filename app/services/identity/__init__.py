"""Who someone is: accounts, passwords, sessions, OAuth and OpenID Connect, API keys."""
