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

from flowengine.connectors.base import BaseDataConnector
from flowengine.extras import LibraryMissing, require

if TYPE_CHECKING:
    from flowengine.nodes.enip.seed import EtherNetIPConnector
    from flowengine.nodes.modbus.seed import ModbusConnector
    from flowengine.nodes.mqtt.seed import MQTTConnector
    from flowengine.nodes.opcua.seed import OPCUAConnector
    from flowengine.nodes.rest.seed import RESTConnector
    from flowengine.nodes.s7.seed import S7Connector
    from flowengine.nodes.sql.seed import DatabaseConnector

__all__ = [
    "BaseDataConnector",
    "DatabaseConnector",
    "EtherNetIPConnector",
    "LibraryMissing",
    "MQTTConnector",
    "ModbusConnector",
    "OPCUAConnector",
    "RESTConnector",
    "S7Connector",
    "require",
]

_LAZY = {
    "OPCUAConnector": "flowengine.nodes.opcua.seed",
    "MQTTConnector": "flowengine.nodes.mqtt.seed",
    "RESTConnector": "flowengine.nodes.rest.seed",
    "DatabaseConnector": "flowengine.nodes.sql.seed",
    "ModbusConnector": "flowengine.nodes.modbus.seed",
    "S7Connector": "flowengine.nodes.s7.seed",
    "EtherNetIPConnector": "flowengine.nodes.enip.seed",
}


def __getattr__(name: str) -> Any:
    """Import a connector module on first use, so importing this package needs no extras."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
