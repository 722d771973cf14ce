"""Access: who is calling (API keys, JWT) and what they may do (Casbin, deny by default).

This package is the only place in guard that imports casbin.
"""
