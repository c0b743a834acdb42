"""The shipped base config files and the schemas whose defaults they spell out
(`scripts/write_base_configs.py` writes them; a test checks that they agree)."""
from __future__ import annotations

from atlas.settings import AtlasRunConfig

from ..config import ImageEditConfig, VideoEditConfig
from .batch.config import BatchConfig

#: shipped base config files -> the schema whose defaults they hold
BASE_CONFIGS = {"configs/image/base.yaml": ImageEditConfig, "configs/video/base.yaml": VideoEditConfig,
                "configs/atlas/base.yaml": AtlasRunConfig, "configs/batch/base.yaml": BatchConfig}
