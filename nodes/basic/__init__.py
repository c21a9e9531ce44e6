"""nodes/basic."""
