"""The agent: runs on a customer machine (Access) or once (Support).

It never imports server, portal or database code.
"""
