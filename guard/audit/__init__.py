"""Audit: hash-chained, HMAC'd events with signed checkpoints, verification and review."""
