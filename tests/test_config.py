import pytest

from text2live_geo.config import ConfigError, ImageEditConfig, load_config


def test_overrides_are_typed_and_merged(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("steps: 7\ntext:\n  src: cat\n")
    cfg = load_config(ImageEditConfig, yaml, ["text.comp=tiger", "loss.imr=0.5"])
    assert cfg.steps == 7 and cfg.text.src == "cat" and cfg.text.comp == "tiger" and cfg.loss.imr == 0.5


@pytest.mark.parametrize("override, key", [
    ("stepz=3", "stepz"), ("text.sorce=x", "text.sorce"), ("steps=many", "steps"),
    ("loss.guidance=clip", "loss.guidance"), ("precision=fp8", "precision"),
])
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(ImageEditConfig, None, [override])


def test_unknown_key_in_yaml_file(tmp_path):
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("clip:\n  modle: x\n")
    with pytest.raises(ConfigError, match="modle"):
        load_config(ImageEditConfig, yaml)


def test_required_keys_exist_under_their_names():
    cfg = load_config(ImageEditConfig)
    for key in ("text.src", "text.comp", "text.screen", "steps", "seed", "device", "output_dir", "clip.model"):
        assert key.split(".")[-1] in (cfg.text if key.startswith("text") else cfg.clip if key.startswith("clip") else cfg)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(ImageEditConfig, None, ["steps"])


def test_every_shipped_image_config_loads():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "image"
    configs = sorted(root.glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = load_config(ImageEditConfig, path, base_path=root / "base.yaml")
        assert cfg.text.comp
