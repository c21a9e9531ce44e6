"""tests/docs."""
