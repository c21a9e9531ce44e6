"""tests/nodes/nats."""
