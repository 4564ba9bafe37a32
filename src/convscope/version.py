"""The version of convscope: a module of its own, which imports nothing, so that any part may read it."""

__version__ = "0.1.0"
