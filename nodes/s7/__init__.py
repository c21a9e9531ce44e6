"""nodes/s7."""
