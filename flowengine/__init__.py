"""flowengine: a Node-RED-style flow runtime for industrial data, batches of pandas DataFrames."""

from __future__ import annotations

__version__ = "0.1.0"
