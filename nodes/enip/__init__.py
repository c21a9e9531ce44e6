"""nodes/enip."""
