"""tests/nodes."""
