"""The customer portal: organisations and (later) groups, agreements and grants."""
