"""Score networks."""
