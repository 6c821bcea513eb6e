"""Keep a client's token between runs, in a file only its owner can read.

A token *is* the identity: whoever holds it acts as that client. The first
connection without a token gets a new identity from the server; save its
``conn.token`` here and pass it back next time to return as the same identity::

    tokens = TokenFile("planner")
    async with connect(uri, db, token=tokens.load()) as conn:
        tokens.save(conn.token)

Files live in ``$XDG_CONFIG_HOME/inner-universe/credentials/<name>`` (by default
``~/.config/inner-universe/credentials/<name>``), or in a directory you choose.
The directory is created 0700 and each file is written 0600 (atomically, so a
crash leaves the old token or the new one); a file that other users can read is
refused on load.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import UsageError

__all__ = ["TokenFile", "credentials_dir"]


def credentials_dir() -> Path:
    """``$XDG_CONFIG_HOME`` (default ``~/.config``) ``/inner-universe/credentials``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "inner-universe" / "credentials"


class TokenFile:
    """One named token on disk: :meth:`load`, :meth:`save`, :meth:`forget`.

    Args:
        name: a plain file name (letters, digits, ``-``, ``_``, ``.``), one per client.
        directory: where the file lives; :func:`credentials_dir` when omitted.
    """

    def __init__(self, name: str, directory: Path | str | None = None) -> None:
        if not name or name.startswith(".") or not all(c.isalnum() or c in "-_." for c in name):
            raise UsageError(
                f"a credentials name must be a plain file name (letters, digits, '-', '_', "
                f"'.', not starting with '.'), not {name!r}"
            )
        self.path = Path(directory or credentials_dir()) / name

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def load(self) -> str | None:
        """The saved token, or None when there is none."""
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(
                f"{self.path} is accessible to other users (mode {stat.filemode(mode)}); "
                f"a token there may be compromised: `chmod 600 {self.path}` or forget it"
            )
        return self.path.read_text().strip() or None

    def save(self, token: str) -> Path:
        """Store ``token`` (replacing any saved one) in a 0600 file; returns its path."""
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise UsageError("a token is a non-empty string without whitespace")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file 0600; the rename makes the new token appear whole.
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(token + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return self.path

    def forget(self) -> bool:
        """Delete the saved token; returns whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
