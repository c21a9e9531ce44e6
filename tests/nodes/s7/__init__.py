"""tests/nodes/s7."""
