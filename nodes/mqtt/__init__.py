"""nodes/mqtt."""
