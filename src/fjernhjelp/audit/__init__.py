"""The audit log: append-only, hash-chained events, verification and export."""
