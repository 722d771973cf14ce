"""Analytics export: profiles, the plan and transformer, readers and writers, engines."""
