"""tests/ui."""
