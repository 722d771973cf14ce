"""Runnable examples: sample inputs and the demo upstream systems guard sits in front of."""
