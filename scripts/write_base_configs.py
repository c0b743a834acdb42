#!/usr/bin/env python
"""Write configs/{image,video,atlas,batch}/base.yaml from the config dataclasses, the one source of
every default (tests/test_config.py checks that the files agree)."""
from pathlib import Path

from text2live_geo.apps.base_configs import BASE_CONFIGS
from text2live_geo.common.config import default_yaml

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    for relative, schema in BASE_CONFIGS.items():
        path = ROOT / relative
        path.write_text(default_yaml(schema))
        print(f"wrote {path}")
