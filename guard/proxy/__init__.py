"""The agent tool proxy: AI agents call customer-data tools through guard (HTTP and MCP)."""
