"""The customer portal: organisations, people, terms, machine groups, agreements and
grants; the access decision (access.py) and revocation events (revocations.py) that the
tunnel relies on."""
