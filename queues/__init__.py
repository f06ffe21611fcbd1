"""Mailslot queue service: a Zaqar v2 wire-compatible message queue."""

__version__ = "0.1.0"
