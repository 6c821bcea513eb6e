"""Reading a database's module schema (RawModuleDefV9) from the server over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ..errors import ConnectError
from .schema import ModuleSchema

__all__ = ["fetch_schema"]


def fetch_schema(uri: str, database: str, timeout: float = 30.0) -> ModuleSchema:
    """Download a database's module schema (RawModuleDefV9) over HTTP.

    Raises:
        ConnectError: the server could not be reached or refused the request.
        SchemaError: the schema it sent cannot be interpreted.
    """
    parts = urllib.parse.urlsplit(uri)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    url = urllib.parse.urlunsplit(
        (
            scheme,
            parts.netloc,
            parts.path.rstrip("/") + f"/v1/database/{urllib.parse.quote(database)}/schema",
            "version=9",
            "",
        )
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return ModuleSchema.from_json(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ConnectError(
            f"could not fetch the schema of {database!r}: HTTP {exc.code} {detail}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConnectError(
            f"could not fetch the schema of {database!r} from {url}: {exc}"
        ) from None
