#!/usr/bin/env python
"""Edit a folder or manifest of clips: `t2l-batch` (text2live_geo/apps/cli/batch.py) run from a source checkout."""
from text2live_geo.apps.cli.batch import main

if __name__ == "__main__":
    raise SystemExit(main())
