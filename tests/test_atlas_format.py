"""Our atlas format (atlas/format.py): save_atlas + load_atlas round trips for both models, the
public NLA checkpoint and run folders through the same loader, and bad folders."""
import json

import pytest
import torch

from atlas.config import AtlasConfig
from atlas.format import CONFIG_FILENAME, FORMAT_NAME, WEIGHTS_FILENAME, load_atlas, save_atlas
from atlas.grid_model import GridAtlas, GridAtlasConfig
from atlas.model import NeuralAtlas
from atlas.nla_format import CHECKPOINT_FILENAME, AtlasCheckpointError
from atlas.testing import make_tiny_atlas


def _grid_atlas(seed: int = 0, layers: int = 2) -> GridAtlas:
    atlas = GridAtlas(GridAtlasConfig(width=20, height=12, num_frames=4, layers=layers, foreground_texture=16,
                                      background_texture=24, residual_cells=4, residual_frames=2))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in atlas.named_parameters():
            parameter.add_((0.05 if "transform" in name else 1.0) * torch.randn(parameter.shape, generator=generator))
        atlas.background_canvas.copy_(torch.tensor([-1.3, -1.1, 2.6]))
        atlas.foreground_canvas.copy_(torch.tensor([-0.4, -0.5, 0.9]))
    atlas.iteration = 123
    return atlas


def _neural_atlas(seed: int = 0) -> NeuralAtlas:
    config = AtlasConfig(width=20, height=12, num_frames=4, foreground_mapping_width=16, background_mapping_width=16,
                         atlas_width=16, atlas_frequencies=3, alpha_width=16, alpha_frequencies=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        atlas = NeuralAtlas(config).eval()
    atlas.iteration = 77
    return atlas


def _assert_same_states(first: torch.nn.Module, second: torch.nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_grid_atlas_round_trip(tmp_path):
    atlas = _grid_atlas()
    folder = save_atlas(atlas, tmp_path / "grid", info={"clip": "procedural"})
    assert sorted(path.name for path in folder.iterdir()) == [CONFIG_FILENAME, WEIGHTS_FILENAME]
    document = json.loads((folder / CONFIG_FILENAME).read_text())
    assert document["format"] == FORMAT_NAME and document["model"] == "grid"
    assert document["iteration"] == 123 and document["info"] == {"clip": "procedural"}
    loaded = load_atlas(folder)
    assert isinstance(loaded, GridAtlas) and not loaded.training
    assert loaded.config == atlas.config and loaded.iteration == 123
    _assert_same_states(atlas, loaded)
    assert torch.equal(loaded.reconstruct(range(4)), atlas.reconstruct(range(4)))
    assert torch.equal(loaded.alpha(range(4)), atlas.alpha(range(4)))


def test_background_only_grid_atlas_round_trip(tmp_path):
    atlas = _grid_atlas(seed=1, layers=1)
    loaded = load_atlas(save_atlas(atlas, tmp_path / "grid1"))
    assert loaded.config.layers == 1
    assert torch.equal(loaded.reconstruct([0, 3]), atlas.reconstruct([0, 3]))
    assert torch.equal(loaded.alpha([1]), torch.full((1, 1, 12, 20), 0.001))


def test_neural_atlas_round_trip(tmp_path):
    atlas = _neural_atlas()
    folder = save_atlas(atlas, tmp_path / "nla")
    assert json.loads((folder / CONFIG_FILENAME).read_text())["model"] == "nla"
    loaded = load_atlas(folder)
    assert isinstance(loaded, NeuralAtlas)
    assert loaded.config.to_json_dict() == atlas.config.to_json_dict() and loaded.iteration == 77
    _assert_same_states(atlas, loaded)
    xyt = torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for name in ("foreground_uv", "background_uv", "alpha_values"):
            assert torch.equal(getattr(loaded, name)(xyt), getattr(atlas, name)(xyt)), name
        uv = torch.rand(500, 2) * 2 - 1
        assert torch.equal(loaded.atlas_rgb(uv), atlas.atlas_rgb(uv))
    assert torch.equal(loaded.reconstruct(range(4)), atlas.reconstruct(range(4)))


def test_load_atlas_num_frames_overrides_an_nla_in_our_format(tmp_path):
    folder = save_atlas(_neural_atlas(), tmp_path / "nla")
    assert load_atlas(folder, num_frames=3).num_frames == 3


def test_public_nla_checkpoint_loads_and_reproduces_its_networks(tmp_path):
    tiny = make_tiny_atlas(tmp_path / "public", width=24, height=16, frames=6, seed=2)
    loaded = load_atlas(tiny.folder)
    assert isinstance(loaded, NeuralAtlas)
    _assert_same_states(tiny.atlas, loaded)
    assert torch.equal(loaded.reconstruct(range(6)), tiny.atlas.reconstruct(range(6)))
    # the tiny video is rendered from the atlas: its reconstruction matches up to 8-bit rounding
    assert (loaded.reconstruct(range(6)) - tiny.frames).abs().max() <= 0.5 / 255 + 1e-6
    # and converting it to our format keeps every network
    converted = load_atlas(save_atlas(loaded, tmp_path / "converted"))
    _assert_same_states(tiny.atlas, converted)


def test_run_folder_with_an_atlas_subfolder(tmp_path):
    atlas = _grid_atlas(seed=4)
    run = tmp_path / "run"
    save_atlas(atlas, run / "atlas")
    (run / "metrics.jsonl").write_text("{}\n")
    loaded = load_atlas(run)
    assert torch.equal(loaded.reconstruct([1]), atlas.reconstruct([1]))
    # a public NLA checkpoint inside a run folder too
    tiny = make_tiny_atlas(tmp_path / "run_nla" / "atlas", seed=1)
    _assert_same_states(tiny.atlas, load_atlas(tmp_path / "run_nla"))


def _error(path, *args, **kwargs) -> str:
    with pytest.raises(AtlasCheckpointError) as caught:
        load_atlas(path, *args, **kwargs)
    return str(caught.value)


def test_missing_folder(tmp_path):
    message = _error(tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    message = _error(tmp_path / "empty")
    assert "holds no atlas" in message
    assert CONFIG_FILENAME in message and WEIGHTS_FILENAME in message and CHECKPOINT_FILENAME in message


def test_config_without_weights(tmp_path):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    (folder / WEIGHTS_FILENAME).unlink()
    message = _error(folder)
    assert f"no {WEIGHTS_FILENAME}" in message


def test_nla_config_without_checkpoint(tmp_path):
    tiny = make_tiny_atlas(tmp_path / "public", seed=0)
    (tiny.folder / CHECKPOINT_FILENAME).unlink()
    message = _error(tiny.folder)
    assert "checkpoint file missing" in message


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_weights(tmp_path, damage):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    weights = folder / WEIGHTS_FILENAME
    data = weights.read_bytes()
    weights.write_bytes({"garbage": b"not a safetensors file" * 10, "truncated": data[: len(data) // 2],
                         "empty": b""}[damage])
    message = _error(folder)
    assert "could not load" in message and WEIGHTS_FILENAME in message


def test_weights_of_another_atlas(tmp_path):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    other = save_atlas(_neural_atlas(), tmp_path / "nla")
    (folder / WEIGHTS_FILENAME).write_bytes((other / WEIGHTS_FILENAME).read_bytes())
    message = _error(folder)
    assert "could not load" in message


def _edit_document(folder, **changes) -> None:
    path = folder / CONFIG_FILENAME
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_unknown_version(tmp_path):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    _edit_document(folder, version=99)
    message = _error(folder)
    assert "version 99" in message and "not supported" in message


def test_unknown_model_and_bad_config(tmp_path):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    _edit_document(folder, model="voxels")
    assert "unknown model 'voxels'" in _error(folder)
    _edit_document(folder, model="grid", config={"width": 20})
    assert "bad atlas config" in _error(folder)
    _edit_document(folder, config={**_grid_atlas().config.to_dict(), "bogus": 1})
    assert "bogus" in _error(folder)


def test_unreadable_config(tmp_path):
    folder = save_atlas(_grid_atlas(), tmp_path / "grid")
    (folder / CONFIG_FILENAME).write_text("{not json")
    message = _error(folder)
    assert "could not read" in message and CONFIG_FILENAME in message


def test_save_rejects_other_modules(tmp_path):
    with pytest.raises(TypeError):
        save_atlas(torch.nn.Linear(2, 2), tmp_path / "linear")
