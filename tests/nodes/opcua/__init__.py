"""tests/nodes/opcua."""
