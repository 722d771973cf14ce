"""The compliance console: server-rendered pages over the audit trail and incidents."""
