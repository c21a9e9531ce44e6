"""tests/flows."""
