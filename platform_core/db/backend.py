"""Which server is behind a URI: SecantusDB (embedded) or mongod, and which version.

Every result the workbench records is labelled with this, because the two have very
different performance shapes (see STACK_NOTES.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BackendInfo:
    name: str  # "SecantusDB" or "mongod"
    version: str  # the product's own version
    mongo_version: str  # the MongoDB version it reports (wire compatibility)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def backend_from_build_info(info: dict[str, Any]) -> BackendInfo:
    mongo_version = str(info.get("version", "unknown"))
    if "secantusVersion" in info:
        return BackendInfo("SecantusDB", str(info["secantusVersion"]), mongo_version)
    return BackendInfo("mongod", mongo_version, mongo_version)


async def detect_backend(client: Any) -> BackendInfo:
    info = await client.admin.command("buildInfo")
    return backend_from_build_info(dict(info))
