"""Accounts: users, passwords, roles and API tokens (users.py), who is asking (guard.py),
login throttling (throttling.py), the per-process login cache (login_cache.py), who may see
which project (membership.py), and the login, token and user pages (views.py)."""
