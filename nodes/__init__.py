"""Built-in node types. Each registers through the ``flowengine.nodes`` entry point group."""
