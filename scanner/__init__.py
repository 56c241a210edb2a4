"""ghostport: a scanner for legacy and orphaned registry service ports."""

__version__ = "0.1.0"
