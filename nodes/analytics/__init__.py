"""nodes/analytics."""
