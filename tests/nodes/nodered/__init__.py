"""tests/nodes/nodered."""
