"""``python -m inner_universe.cli``: the same as the ``inner-universe`` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
