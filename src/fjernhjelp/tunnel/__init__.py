"""The end-to-end tunnel: tickets, handshake, framing, streams.

The same code runs at every end (agent, command-line client, tests); it imports neither
the server nor the agent. The browser implements the same specification (docs/tunnel.md).
"""
