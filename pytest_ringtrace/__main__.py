"""``python -m pytest_ringtrace``: the ``ringtrace`` command (kept for old scripts)."""

import sys

from instrument.view.cli import main

if __name__ == "__main__":
    sys.exit(main())
