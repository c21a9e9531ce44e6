"""nodes/modbus."""
