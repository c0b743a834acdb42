#!/usr/bin/env python
"""Edit one video: the `t2l-video` command (text2live_geo/apps/cli/video.py) run from a source checkout."""
from text2live_geo.apps.cli.video import main

if __name__ == "__main__":
    raise SystemExit(main())
