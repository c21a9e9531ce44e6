"""Node types, by family, and what only they use. Installed as ``flowengine.nodes``.

Each type registers through the ``flowengine.nodes`` entry point group; family CLI commands
through ``flowengine.commands``. Importing a module registers nothing.
"""

if __name__ != "flowengine.nodes":  # the repo folder imported as a top-level package
    raise ImportError(
        f"'{__name__}' is the repository folder of flowengine's node types; "
        "import them as 'flowengine.nodes' (pip install -e . from the repository root)"
    )
