#!/usr/bin/env python
"""Fit a layered atlas to a clip: `t2l-atlas` (text2live_geo/apps/cli/atlas.py) run from a source checkout."""
from text2live_geo.apps.cli.atlas import main

if __name__ == "__main__":
    raise SystemExit(main())
