"""``python -m mephisto_quals.devtools.pilot prepare [--cache DIR]``: build the cache (used by ./run)."""

from __future__ import annotations

import sys

from mephisto_quals.devtools.pilot.builds import main

if __name__ == "__main__":
    sys.exit(main())
