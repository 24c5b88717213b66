"""The agent's control link to the server: message schemas and signed statements.

Shared by the server and the agent (it imports neither). The control link carries no
session content: it announces the machine, proves who is who, tells the agent to dial the
relay or cut a session, and carries the agent's reports of what happened (consent,
streams, files) so the server can audit them.
"""
