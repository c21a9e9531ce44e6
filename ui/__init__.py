"""The browser flow editor (NiceGUI): `flowengine edit`. Installed as ``flowengine.ui``."""

if __name__ != "flowengine.ui":  # the repo folder imported as a top-level package
    raise ImportError(
        f"'{__name__}' is the repository folder of flowengine's editor; "
        "import it as 'flowengine.ui' (pip install -e '.[editor]' from the repository root)"
    )
