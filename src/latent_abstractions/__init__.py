"""A reproducible pipeline for studying when diffusion models commit to the
factors of what they generate (position, colour, shape, ...)."""

__version__ = "0.1.0"
