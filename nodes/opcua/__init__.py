"""nodes/opcua."""
