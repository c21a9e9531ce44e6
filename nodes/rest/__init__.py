"""nodes/rest."""
