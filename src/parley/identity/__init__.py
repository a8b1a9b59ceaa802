"""Accounts, sessions and API keys: who a request comes from and what it may do."""
