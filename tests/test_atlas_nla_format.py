"""atlas.nla_format: the public NLA checkpoint written and read back, and its errors."""

import json
import shutil

import pytest
import torch

from atlas import AtlasCheckpointError, NeuralAtlas
from atlas.nla_format import NLA_STATE_DICT_KEYS
from atlas.testing import make_tiny_atlas


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas"), width=24, height=16, frames=6, seed=3)


def copy_folder(tiny, tmp_path):
    target = tmp_path / "atlas"
    shutil.copytree(tiny.folder, target)
    return target


def grid_pixels(atlas):
    t, y, x = torch.meshgrid(
        torch.arange(atlas.num_frames), torch.arange(atlas.height), torch.arange(atlas.width), indexing="ij"
    )
    return x.reshape(-1).float(), y.reshape(-1).float(), t.reshape(-1).float()


def test_written_checkpoint_has_public_format(tiny):
    checkpoint = torch.load(tiny.folder / "checkpoint", map_location="cpu", weights_only=True)
    assert set(checkpoint) == set(NLA_STATE_DICT_KEYS.values()) | {"iteration", "optimizer_all_state_dict"}
    assert len(checkpoint["optimizer_all_state_dict"]["param_groups"]) == 4
    config = json.loads((tiny.folder / "config.json").read_text())
    assert (config["resx"], config["resy"], config["maximum_number_of_frames"]) == (24, 16, 6)
    assert config["number_of_channels_atlas"] == 16 and config["positional_encoding_num_atlas"] == 4
    assert config["number_of_layers_mapping1"] == 6 and config["use_positional_encoding_mapping1"] is False


def test_from_nla_checkpoint_round_trips(tiny):
    loaded = NeuralAtlas.from_nla_checkpoint(tiny.folder, device="cpu")
    assert (loaded.width, loaded.height, loaded.num_frames) == (24, 16, 6)
    for name in NLA_STATE_DICT_KEYS:
        original, restored = getattr(tiny.atlas, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == restored.keys()
        assert all(torch.equal(original[k], restored[k]) for k in original)
    x, y, t = grid_pixels(loaded)
    with torch.no_grad():
        a, b = tiny.atlas.query(x, y, t), loaded.query(x, y, t)
    for field in ("uv_foreground", "uv_background", "alpha", "rgb_foreground", "rgb_background"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_frame_count_override(tiny):
    loaded = NeuralAtlas.from_nla_checkpoint(tiny.folder, num_frames=4)
    assert loaded.num_frames == 4
    xyt = loaded.normalize_coordinates(torch.zeros(1), torch.zeros(1), torch.tensor([2.0]))
    assert xyt[0, 2] == 0.0


def test_missing_state_dict_key(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path)
    checkpoint = torch.load(folder / "checkpoint", weights_only=True)
    del checkpoint["F_atlas_state_dict"]
    torch.save(checkpoint, folder / "checkpoint")
    with pytest.raises(AtlasCheckpointError, match="F_atlas_state_dict"):
        NeuralAtlas.from_nla_checkpoint(folder)


def test_wrong_layer_shape_names_layer_and_shapes(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path)
    checkpoint = torch.load(folder / "checkpoint", weights_only=True)
    checkpoint["model_F_alpha_state_dict"]["hidden.3.weight"] = torch.zeros(16, 17)
    torch.save(checkpoint, folder / "checkpoint")
    with pytest.raises(AtlasCheckpointError) as error:
        NeuralAtlas.from_nla_checkpoint(folder)
    message = str(error.value)
    assert "alpha network" in message and "hidden.3.weight" in message
    assert "(16, 17)" in message and "(16, 16)" in message


def test_layer_count_mismatch(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["number_of_layers_mapping2"] = 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(AtlasCheckpointError, match="model_F_mapping2_state_dict.*hidden.4"):
        NeuralAtlas.from_nla_checkpoint(folder)


def test_missing_files_and_config_keys(tiny, tmp_path):
    with pytest.raises(AtlasCheckpointError, match="folder not found"):
        NeuralAtlas.from_nla_checkpoint(tmp_path / "nowhere")
    folder = copy_folder(tiny, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["resx"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(AtlasCheckpointError, match="'resx'"):
        NeuralAtlas.from_nla_checkpoint(folder)
    assert NeuralAtlas.from_nla_checkpoint(folder, width=24).width == 24
    (folder / "config.json").unlink()
    with pytest.raises(AtlasCheckpointError, match="config.json"):
        NeuralAtlas.from_nla_checkpoint(folder)
    shutil.copy(tiny.folder / "config.json", folder / "config.json")
    (folder / "checkpoint").unlink()
    with pytest.raises(AtlasCheckpointError, match="checkpoint file missing"):
        NeuralAtlas.from_nla_checkpoint(folder)
    (folder / "checkpoint").write_bytes(b"not a checkpoint")
    with pytest.raises(AtlasCheckpointError, match="cannot read"):
        NeuralAtlas.from_nla_checkpoint(folder)


def test_size_keys_default_to_nla_values(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    for key in list(config):
        if key not in ("resx", "resy", "maximum_number_of_frames"):
            del config[key]
    (folder / "config.json").write_text(json.dumps(config))
    # defaults are NLA's 256-wide networks, so the 16-wide tiny checkpoint no longer fits
    with pytest.raises(AtlasCheckpointError, match=r"\(256, 3\)"):
        NeuralAtlas.from_nla_checkpoint(folder)


def test_written_optimizer_state_loads_into_adam(tiny):
    checkpoint = torch.load(tiny.folder / "checkpoint", weights_only=True)
    atlas = tiny.atlas
    groups = [{"params": list(getattr(atlas, name).parameters())}
              for name in ("foreground_mapping", "background_mapping", "alpha_network", "atlas_network")]
    optimizer = torch.optim.Adam(groups, lr=1.0)
    optimizer.load_state_dict(checkpoint["optimizer_all_state_dict"])
    assert optimizer.param_groups[0]["lr"] == 1e-4
