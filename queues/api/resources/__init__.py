"""Falcon resources, one module per Zaqar resource family."""
