"""tests/nodes/analytics."""
