"""The ASGI server: web pages, the JSON API, and (later) the agent endpoint and relay."""
