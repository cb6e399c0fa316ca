"""Outbound communications and campaign manager for support contracts and service plans."""

__version__ = "0.1.0"
