"""The OPC UA lister of ``flowengine browse opc.tcp://...`` (see ``flowengine.browse``).

asyncua is imported on use, so ``flowengine --help`` works without the extra.
"""

from __future__ import annotations

from typing import Any

from flowengine.extras import require


async def browse_tree(url: str, depth: int, timeout: float = 4.0) -> list[dict[str, Any]]:
    """Objects below the Objects folder down to ``depth`` levels, one request batch per level.

    Standard namespace-0 objects (Server, Aliases) are left out: they are not plant data.
    """
    asyncua = require("asyncua", "opcua")
    ua = asyncua.ua
    rows: list[dict[str, Any]] = []
    async with asyncua.Client(url, timeout=timeout) as client:
        level: list[tuple[Any, str]] = [(client.nodes.objects, "")]
        for d in range(depth):
            parents = [n for n, _ in level]
            if not parents:
                break
            browsed = await client.browse_nodes(parents)
            nxt: list[tuple[Any, str]] = []
            for (_, path), (_, result) in zip(level, browsed, strict=True):
                for ref in result.References:
                    if not ref.IsForward or ref.NodeClass not in (
                        ua.NodeClass.Object,
                        ua.NodeClass.Variable,
                    ):
                        continue
                    if d == 0 and ref.NodeId.NamespaceIndex == 0:
                        continue
                    name = ref.BrowseName.to_string()
                    nxt.append((client.get_node(ref.NodeId), f"{path}/{name}"))
            variables = [n for n, _ in nxt]
            classes = await client.read_attributes(variables, ua.AttributeIds.NodeClass)
            values = await client.read_attributes(variables)
            for (node, path), cls, dv in zip(nxt, classes, values, strict=True):
                is_var = cls.Value.Value == ua.NodeClass.Variable
                row: dict[str, Any] = {
                    "node_id": node.nodeid.to_string(),
                    "browse_name": path.rsplit("/", 1)[-1],
                    "path": path.lstrip("/"),
                    "node_class": "Variable" if is_var else "Object",
                    "data_type": None,
                    "value": None,
                    "depth": d + 1,
                }
                if is_var and dv.Value is not None:
                    row["data_type"] = dv.Value.VariantType.name
                    row["value"] = dv.Value.Value
                rows.append(row)
            level = nxt
    return rows
