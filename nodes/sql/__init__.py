"""nodes/sql."""
