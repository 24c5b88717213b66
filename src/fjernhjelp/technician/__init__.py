"""The technician's side outside the browser: API client and stored credentials for the CLI.

Runs on a technician's machine: it never imports server, portal, db or agent code.
"""
