"""tests/nodes/sql."""
