"""``python -m aioposix``: the same as the ``aioposix`` command."""

from __future__ import annotations

import sys

from aioposix._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
