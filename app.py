"""AUFX web app from a checkout: `python app.py [--host 127.0.0.1] [--port 7860] ...` (or `make app`); the same as
`python -m aufx app` from an install. The options and what the app exposes are in aufx/app.py."""
from __future__ import annotations

import sys

from aufx.app import config_from_args, main, parse_args  # noqa: F401  (tests build configs through this module)

if __name__ == "__main__":
    main(sys.argv[1:], prog="python app.py")
