"""Incidents: Sigma rules over the audit trail open incidents that carry a runbook and a clock."""
