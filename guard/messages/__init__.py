"""The outgoing-message guard: other customers' data and secrets block a message; tone advice."""
