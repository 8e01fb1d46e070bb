"""``python -m mephisto_quals.devtools.live_load``: process A (``run``) or process B (``writer``)."""

from __future__ import annotations

from mephisto_quals.devtools.live_load.cli import main

if __name__ == "__main__":
    main()
