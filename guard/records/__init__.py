"""Customer records: encrypted at rest per customer, searchable by blind index, viewed per role."""
