"""Data subject rights and retention.

Access, portability and erasure requests; retention schedules and legal holds; the record of
processing and the privacy notice, made from the policies.
"""
