#!/usr/bin/env python
"""Edit one image: the `t2l-image` command (text2live_geo/apps/cli/image.py) run from a source checkout."""
from text2live_geo.apps.cli.image import main

if __name__ == "__main__":
    raise SystemExit(main())
