from pathlib import Path

import pytest

from text2live_geo.apps.base_configs import BASE_CONFIGS
from text2live_geo.common.config import ConfigError, default_yaml, flatten_mapping, load_config
from text2live_geo.config import Guidance, ImageEditConfig, VideoEditConfig

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
    from text2live_geo.common.config import to_yaml

    saved = tmp_path / "saved.yaml"
    saved.write_text(to_yaml(cfg))
    assert load_config(ImageEditConfig, saved).text.comp == ["golden horse", "gold horse"]


@pytest.mark.parametrize("override", ["text.comp= ", "text.comp=", "text.src=[]", "text.screen=[gold, '']"])
def test_check_texts_rejects_empty_texts(override):
    from text2live_geo.common.runs import RunError
    from text2live_geo.editing.run import check_texts

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
    from text2live_geo.common.config import to_yaml

    cfg = load_config(ImageEditConfig, None, ["image=x.png", "loss.guidance=directional", "precision=bf16"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(ImageEditConfig, path) == cfg


# ------------------------------------------------------------------ renamed keys (LegacyKey)
def test_an_old_key_name_still_works_with_one_warning_line(tmp_path, caplog):
    from atlas.settings import AtlasRunConfig

    with caplog.at_level("WARNING"):
        cfg = load_config(ImageEditConfig, None, ["log_every=7"])
    assert cfg.snapshot_every == 7
    assert [r.getMessage() for r in caplog.records] == [
        "config key 'log_every' is now 'snapshot_every' (the old name still works)"]
    caplog.clear()
    # the new name wins where one source sets both; nothing to warn about when only the new one is set
    assert load_config(VideoEditConfig, None, ["snapshot_every=3"]).snapshot_every == 3 and not caplog.records
    yaml = tmp_path / "old_fit.yaml"
    yaml.write_text("fit:\n  bootstrap: 0.3\n  bootstrap_until: 50\n")
    atlas = load_config(AtlasRunConfig, yaml)
    assert (atlas.fit.mask_loss, atlas.fit.mask_loss_until) == (0.3, 50)
    assert load_config(VideoEditConfig, None, ["fit.bootstrap=0.2"]).fit.mask_loss == 0.2
    # where one source sets both names, the new one wins
    assert load_config(AtlasRunConfig, None, ["fit.bootstrap=0.2", "fit.mask_loss=0.1"]).fit.mask_loss == 0.1


def test_loss_directional_weighs_imc_only_in_a_config_written_before_loss_imc(tmp_path, caplog):
    old = tmp_path / "old_run_config.yaml"  # a saved config of a geodesic run from before loss.imc
    old.write_text("loss:\n  guidance: geodesic\n  directional: 2.5\n")
    with caplog.at_level("WARNING"):
        cfg = load_config(ImageEditConfig, old)
    assert cfg.loss.imc == 2.5 and cfg.loss.directional == 2.5
    assert len(caplog.records) == 1 and "loss.imc" in caplog.records[0].getMessage()
    caplog.clear()
    # a config that sets loss.imc itself, or directional guidance, keeps the two weights apart
    both = tmp_path / "new.yaml"
    both.write_text("loss:\n  directional: 2.5\n  imc: 0.5\n")
    assert load_config(ImageEditConfig, both).loss.imc == 0.5
    cfg = load_config(ImageEditConfig, None, ["loss.guidance=directional", "loss.directional=3"])
    assert (cfg.loss.directional, cfg.loss.imc) == (3, 1) and not caplog.records
    # a later source's loss.imc overrides the copy from an earlier one
    assert load_config(ImageEditConfig, old, ["loss.imc=0.25"]).loss.imc == 0.25


def test_flatten_mapping_gives_each_leaf_its_dotted_key_in_order():
    nested = {"steps": 3, "text": {"src": "cat", "comp": ["a", "b"]}, "loss": {}, "clip": {"aug": {"n": 2}}}
    flat = flatten_mapping(nested)
    assert flat == {"steps": 3, "text.src": "cat", "text.comp": ["a", "b"], "clip.aug.n": 2}  # lists are leaves
    assert list(flat) == ["steps", "text.src", "text.comp", "clip.aug.n"]
    assert flatten_mapping({"b": 1}, "a.") == {"a.b": 1}
