"""fjernhjelp: remote assistance for a health network."""

__version__ = "0.1.0"
