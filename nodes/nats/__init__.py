"""nodes/nats."""
