"""atlas.model: checkpoint round trip, coordinate conventions, errors."""

import json
import shutil

import pytest
import torch

from atlas import AtlasCheckpointError, NeuralAtlas, reconstruction_psnr
from atlas.model import NLA_STATE_DICT_KEYS
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


def test_query_normalisation_and_mappings(tiny):
    atlas = tiny.atlas
    # W = 24, H = 16, N = 6: L = 24; pixel (12, 8) of frame 3 -> (0, -1/3, 0).
    xyt = atlas.normalize_coordinates(torch.tensor([12.0]), torch.tensor([8.0]), torch.tensor([3.0]))
    assert torch.allclose(xyt, torch.tensor([[0.0, -1.0 / 3.0, 0.0]]))
    with torch.no_grad():
        query = atlas.query(torch.tensor([12.0]), torch.tensor([8.0]), torch.tensor([3.0]))
        assert torch.allclose(query.uv_foreground, 0.5 * atlas.foreground_mapping(xyt) + 0.5)
        assert torch.allclose(query.uv_background, 0.5 * atlas.background_mapping(xyt) - 0.5)
        assert torch.allclose(query.alpha, 0.99 * (atlas.alpha_network(xyt) + 1) / 2 + 0.001)
        assert torch.allclose(query.rgb_foreground, (atlas.atlas_network(query.uv_foreground) + 1) / 2)


def test_query_ranges_and_shared_atlas(tiny):
    atlas = tiny.atlas
    x, y, t = grid_pixels(atlas)
    with torch.no_grad():
        query = atlas.query(x, y, t)
        assert query.uv_foreground.shape == (x.numel(), 2) and query.alpha.shape == (x.numel(), 1)
        assert 0 < query.uv_foreground.min() and query.uv_foreground.max() < 1
        assert -1 < query.uv_background.min() and query.uv_background.max() < 0
        assert 0.001 <= query.alpha.min() and query.alpha.max() <= 0.991
        assert 0 <= query.rgb_foreground.min() and query.rgb_background.max() <= 1
        # one atlas network serves both layers: each layer's colour is the shared net at its uv
        assert torch.equal(query.rgb_background, atlas.atlas_rgb(query.uv_background))
        assert torch.equal(query.rgb_foreground, atlas.atlas_rgb(query.uv_foreground))
    assert not hasattr(atlas, "foreground_atlas") and not hasattr(atlas, "background_atlas")


def test_precompute_maps_matches_query_and_chunking(tiny):
    atlas = tiny.atlas
    maps = atlas.precompute_maps(device="cpu", chunk_size=97, progress=True)
    assert maps.uv_foreground.shape == (6, 16, 24, 2) and maps.alpha.shape == (6, 1, 16, 24)
    x, y, t = grid_pixels(atlas)
    with torch.no_grad():
        query = atlas.query(x, y, t)
    assert torch.allclose(maps.uv_foreground.reshape(-1, 2), query.uv_foreground, atol=1e-6)
    assert torch.allclose(maps.uv_background.reshape(-1, 2), query.uv_background, atol=1e-6)
    assert torch.allclose(maps.alpha.reshape(-1, 1), query.alpha, atol=1e-6)
    frames = atlas.reconstruct_frames(chunk_size=1000)
    assert torch.allclose(frames.permute(0, 2, 3, 1).reshape(-1, 3), query.reconstruction, atol=1e-6)
    # the written video is the atlas's own reconstruction up to 8-bit rounding
    assert reconstruction_psnr(frames, tiny.frames) > 45
    assert len(list(tiny.frames_folder.glob("*.png"))) == 6


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
