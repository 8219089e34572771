"""Launcher: ``python main.py`` opens the window, ``python main.py --headless`` runs the core."""

import sys

from deal_monitor.cli import main

if __name__ == "__main__":
    sys.exit(main())
