"""Tracking: what customers did with their letters (events) and the results (reports)."""
