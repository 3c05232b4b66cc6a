"""survivor: a systems monitor that keeps all state and history as plain files."""

__version__ = "0.1.0"
