from pathlib import Path

import pytest

from text2live_geo.config import (
    BASE_CONFIGS,
    ConfigError,
    Guidance,
    ImageEditConfig,
    VideoEditConfig,
    default_yaml,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_overrides_are_typed_and_merged(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("steps: 7\ntext:\n  src: cat\n")
    cfg = load_config(ImageEditConfig, yaml, ["text.comp=tiger", "loss.imr=0.5"])
    assert cfg.steps == 7 and cfg.text.src == ["cat"] and cfg.text.comp == ["tiger"] and cfg.loss.imr == 0.5


def test_texts_are_lists_and_a_single_text_is_a_one_text_list(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text('text:\n  src: ["countryside", "countryside with trees"]\n  comp: countryside at night\n')
    cfg = load_config(ImageEditConfig, yaml, ["text.screen=night"])
    assert cfg.text.src == ["countryside", "countryside with trees"]
    assert cfg.text.comp == ["countryside at night"] and cfg.text.screen == ["night"]
    overrides = ["text.src=horse", "text.comp=[golden horse, gold horse]", "text.screen=7"]
    cfg = load_config(ImageEditConfig, yaml, overrides)
    assert cfg.text.src == ["horse"] and cfg.text.comp == ["golden horse", "gold horse"] and cfg.text.screen == ["7"]
    assert load_config(VideoEditConfig, None, ["text.src=swan"]).text.src == ["swan"]
    assert load_config(ImageEditConfig).text.src == ["horse"]  # the default is a list too
    # a saved config round-trips as lists
    from text2live_geo.config import to_yaml

    saved = tmp_path / "saved.yaml"
    saved.write_text(to_yaml(cfg))
    assert load_config(ImageEditConfig, saved).text.comp == ["golden horse", "gold horse"]


@pytest.mark.parametrize("override", ["text.comp= ", "text.comp=", "text.src=[]", "text.screen=[gold, '']"])
def test_check_texts_rejects_empty_texts(override):
    from text2live_geo.editing.run import RunError, check_texts

    check_texts(load_config(ImageEditConfig, None, ["text.src=[a, b]"]))
    with pytest.raises(RunError, match=r"text\.(src|comp|screen) is empty"):
        check_texts(load_config(ImageEditConfig, None, [override]))


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
        assert hasattr(cfg.text if key.startswith("text") else cfg.clip if key.startswith("clip") else cfg,
                       key.split(".")[-1])


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(ImageEditConfig, None, ["steps"])


def test_every_shipped_image_config_loads():
    root = ROOT / "configs" / "image"
    configs = sorted(root.glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = load_config(ImageEditConfig, path, base_path=root / "base.yaml")
        assert cfg.text.comp


def test_load_returns_the_typed_dataclass_with_enum_choices():
    cfg = load_config(VideoEditConfig, None, ["loss.guidance=directional", "layer=background"])
    assert isinstance(cfg, VideoEditConfig)
    assert cfg.loss.guidance is Guidance.directional and cfg.loss.guidance == "directional"
    assert cfg.layer == "background" and f"{cfg.layer}" == "background"
    assert cfg.clip.n_aug == 6 and cfg.optim.lr_decay == 0.999  # video defaults differ from the image ones


@pytest.mark.parametrize("override, allowed", [
    ("layer=middle", "foreground, background"), ("clip.fill=grey", "white, black"),
    ("loss.imr_anchor=input", "previous, source"), ("optim.name=sgd", "madgrad, adam"),
])
def test_a_choice_outside_its_set_fails_at_load_with_the_key_and_the_set(override, allowed):
    with pytest.raises(ConfigError, match=rf"'{override.split('=')[0]}'.*{allowed}"):
        load_config(VideoEditConfig, None, [override])


@pytest.mark.parametrize("relative", sorted(BASE_CONFIGS))
def test_base_config_files_hold_exactly_the_dataclass_defaults(relative):
    """One source of defaults: the base YAMLs are generated from the dataclasses."""
    schema = BASE_CONFIGS[relative]
    assert (ROOT / relative).read_text() == default_yaml(schema), "rerun scripts/write_base_configs.py"
    assert load_config(schema, ROOT / relative) == load_config(schema)


def test_saved_config_round_trips(tmp_path):
    from text2live_geo.config import to_yaml

    cfg = load_config(ImageEditConfig, None, ["image=x.png", "loss.guidance=directional", "precision=bf16"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(ImageEditConfig, path) == cfg
