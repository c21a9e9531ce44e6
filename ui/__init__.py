"""The browser flow editor (NiceGUI): `flowengine edit`."""
