#!/usr/bin/env python
"""Entry point: `python forge.py --config CONFIG` (see `--help`)."""

from forge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
