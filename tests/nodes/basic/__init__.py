"""tests/nodes/basic."""
