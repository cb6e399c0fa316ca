"""Accounts: the people who use the admin — users, roles, sessions, the audit trail."""
