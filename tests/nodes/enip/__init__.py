"""tests/nodes/enip."""
