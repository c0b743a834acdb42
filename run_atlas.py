#!/usr/bin/env python
"""Fit a layered atlas to a clip: the `t2l-atlas` command (text2live_geo/cli/atlas.py) run from a source checkout."""
from text2live_geo.cli.atlas import main

if __name__ == "__main__":
    raise SystemExit(main())
