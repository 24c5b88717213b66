"""Support: one-time sessions joined with a code (issue 11); here, the end user's client."""
