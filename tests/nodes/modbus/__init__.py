"""tests/nodes/modbus."""
