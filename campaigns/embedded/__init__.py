"""Embedded: what lets one machine run alone — local services, the Outbox, demo data."""
