"""tests/nodes/rest."""
