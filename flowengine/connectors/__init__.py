"""The seed's connector library API, usable without a flow.

    from flowengine.connectors import OPCUAConnector
    opcua = OPCUAConnector({"server_url": "opc.tcp://plc:4840", "nodes": ["ns=2;i=1001"]})
    if opcua.connect():
        frame = opcua.read_data()
        opcua.disconnect()

Each connector wraps the same protocol client that the flow nodes use, so there is one
implementation per protocol. Protocol libraries are imported lazily: a missing one gives the
seed's message ("OPC UA library not available. Install 'flowengine[opcua]'").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowengine.connectors.base import BaseDataConnector, LibraryMissing, require

if TYPE_CHECKING:
    from flowengine.connectors.mqtt import MQTTConnector
    from flowengine.connectors.opcua import OPCUAConnector
    from flowengine.connectors.rest import RESTConnector
    from flowengine.connectors.sql import DatabaseConnector

__all__ = [
    "BaseDataConnector",
    "DatabaseConnector",
    "LibraryMissing",
    "MQTTConnector",
    "OPCUAConnector",
    "RESTConnector",
    "require",
]

_LAZY = {
    "OPCUAConnector": "flowengine.connectors.opcua",
    "MQTTConnector": "flowengine.connectors.mqtt",
    "RESTConnector": "flowengine.connectors.rest",
    "DatabaseConnector": "flowengine.connectors.sql",
}


def __getattr__(name: str) -> Any:
    """Import a connector module on first use, so importing this package needs no extras."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
