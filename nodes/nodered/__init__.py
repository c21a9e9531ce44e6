"""nodes/nodered."""
