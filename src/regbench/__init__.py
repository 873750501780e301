"""regbench: a reproducible benchmark suite for regularization in deep networks."""

__version__ = "0.1.0"
