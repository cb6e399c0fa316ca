"""Audience: customers (contacts), their contracts, and segments that select among them."""
