"""Lecture 6 as verified JAX code."""
__version__ = "0.1.0"
