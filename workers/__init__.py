"""The Dramatiq edge: broker from settings, per-process runtime, thin idempotent actors."""
