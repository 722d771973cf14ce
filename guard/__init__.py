"""guard: a confidentiality guard for customer-service teams."""

__version__ = "0.1.0"
