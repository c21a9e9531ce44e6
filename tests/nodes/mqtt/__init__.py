"""tests/nodes/mqtt."""
