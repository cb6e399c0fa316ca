"""Delivery: campaign lifecycle, the ledger, sending over SMTP, and the tokens letters carry."""
