"""Node-RED import: ``convert`` is the API, ``command`` the ``flowengine import`` command."""
