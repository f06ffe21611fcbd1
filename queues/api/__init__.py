"""The falcon ASGI application: Zaqar's v2 REST API."""
