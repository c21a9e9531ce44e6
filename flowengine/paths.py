"""Where nodes may write files: the write policy the editor gives the flows it runs.

In the editor, a flow is edited by whoever has the editor's password, and a node that writes a
file could otherwise write a flow file (one with ``settings: {allow_code: true}``, say) or
anything else the editor's user may write. Under a :class:`WritePolicy` a node's written paths
(the config fields declared with ``option(..., writes=True)``) must lie inside the output root
and must not name a flow or flow test file. ``flowengine run`` gives no policy: a flow run from
the command line writes where its file says.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where the editor lets nodes write, relative to the flow's folder, unless told otherwise.
DEFAULT_OUTPUT_DIR = "out"
#: Endings of files a node may never write under a policy: flows (and their tests) and
#: ``.env`` files, which the runtime reads.
FLOW_ENDINGS = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class WritePolicy:
    """Nodes write only inside ``root`` and never a flow file. Without a root: inside an
    ``out`` folder beside the flow file or beside its folder (``flows/`` and ``out/`` side by
    side, as in this repository)."""

    root: Path | None = None

    def roots_for(self, flow_dir: Path) -> list[Path]:
        """The output roots for a flow in ``flow_dir``, resolved (symlinks followed)."""
        if self.root is not None:
            return [(flow_dir / self.root).resolve()]
        return [(d / DEFAULT_OUTPUT_DIR).resolve() for d in (flow_dir, flow_dir.parent)]

    def refusal(self, path: str | Path, flow_dir: Path) -> str | None:
        """Why a node may not write ``path`` (relative paths are beside the flow, as nodes read
        them); None when it may."""
        target = (flow_dir / path).resolve()  # `..` and symlinks resolved before comparing
        name = target.name.lower()
        if name.endswith(FLOW_ENDINGS) or name == ".env" or name.startswith(".env."):
            return (
                f"'{path}' would be a flow, flow test or .env file: nodes may not write those "
                "in the editor"
            )
        roots = self.roots_for(flow_dir)
        if not any(target.is_relative_to(root) for root in roots):
            where = " or ".join(str(r) for r in roots)
            return (
                f"'{path}' is outside the editor's output root ({where}; start the editor "
                "with --output-root DIR to choose another)"
            )
        return None


def written_paths(config: Any) -> Iterator[tuple[str, str]]:
    """(field, path) for each path ``config`` declares it writes (``option(writes=True)``)."""
    fields = getattr(type(config), "model_fields", {})
    for name, info in fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("writes"):
            value = getattr(config, name, None)
            if isinstance(value, str | os.PathLike) and str(value):
                yield name, str(value)


def refusals(policy: WritePolicy | None, config: Any, flow_dir: Path) -> list[tuple[str, str]]:
    """(field, why) for each path a node with ``config`` may not write under ``policy``
    (empty: it may write them all, or there is no policy)."""
    if policy is None:
        return []
    found = ((name, policy.refusal(path, flow_dir)) for name, path in written_paths(config))
    return [(name, why) for name, why in found if why is not None]
