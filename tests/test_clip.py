import pytest
import torch

from text2live_geo.clip import IMAGE_TEMPLATES, ClipGuide, ClipLoadError


def test_loads_through_from_pretrained_frozen(tiny_clip):
    assert not tiny_clip.model.training
    assert all(not p.requires_grad for p in tiny_clip.parameters())


def test_batched_views_equal_per_view_forwards(tiny_clip):
    torch.manual_seed(0)
    views = torch.rand(5, 3, 32, 44)
    batched = tiny_clip.encode_images(views)
    single = torch.cat([tiny_clip.encode_images(v[None]) for v in views])
    assert batched.shape == (5, 32)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(5))


def test_image_gradients_flow_through_frozen_model(tiny_clip):
    views = torch.rand(2, 3, 32, 32, requires_grad=True)
    tiny_clip.encode_images(views).sum().backward()
    assert views.grad is not None and views.grad.abs().sum() > 0


def test_text_embeddings_cached_and_unit(tiny_clip):
    first = tiny_clip.text_embeddings("red circle", IMAGE_TEMPLATES)
    assert first.shape == (len(IMAGE_TEMPLATES), 32)
    assert tiny_clip.text_embeddings("red circle", IMAGE_TEMPLATES) is first
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(len(IMAGE_TEMPLATES)))
    assert not torch.allclose(first[0], tiny_clip.text_embeddings("blue square", IMAGE_TEMPLATES)[0])


def test_structure_tokens_and_relevancy(tiny_clip):
    image = torch.rand(1, 3, 32, 48)
    attention_before = tiny_clip.model.config._attn_implementation
    tokens = tiny_clip.structure_tokens(image)
    assert tokens.shape == (1, 1 + (32 // 8) * (48 // 8), 32)
    relevancy = tiny_clip.relevancy(image, "red circle")
    assert relevancy.shape == (1, 1, 32, 48)
    assert relevancy.min() == 0 and relevancy.max() == pytest.approx(1.0)
    assert tiny_clip.model.config._attn_implementation == attention_before  # restored after eager
    assert all(p.grad is None for p in tiny_clip.parameters())


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ClipLoadError, match="clip.model"):
        ClipGuide.load(str(tmp_path / "nothing_here"))


def test_hub_id_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ClipLoadError, match=r"openai/clip-vit-base-patch32.*clip.model=/path/to/local/folder"):
        ClipGuide.load("openai/clip-vit-base-patch32")


def test_checkpointed_encode_matches_plain_in_value_and_gradient(tiny_clip):
    torch.manual_seed(3)
    views = torch.rand(6, 3, 32, 32, requires_grad=True)
    plain = tiny_clip.encode_images(views)
    (plain * torch.arange(32.0)).sum().backward()
    plain_grad = views.grad.clone()
    views.grad = None
    chunked = tiny_clip.encode_images(views, checkpoint_chunk=4)
    (chunked * torch.arange(32.0)).sum().backward()
    torch.testing.assert_close(chunked, plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(views.grad, plain_grad, atol=1e-6, rtol=1e-4)
    views.grad = None
    layered = tiny_clip.encode_images(views, checkpoint_layers=2)  # first 2 of 3 layers recomputed
    (layered * torch.arange(32.0)).sum().backward()
    torch.testing.assert_close(layered, plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(views.grad, plain_grad, atol=1e-6, rtol=1e-4)
    assert not any(layer.checkpointed for layer in tiny_clip._vision_layers)


def test_release_text_model_keeps_cached_embeddings(tiny_clip_dir):
    clip = ClipGuide.load(str(tiny_clip_dir))
    before = clip.text_embeddings("red circle", IMAGE_TEMPLATES)
    weights = sum(p.numel() for p in clip.parameters())
    clip.release_text_model()
    assert sum(p.numel() for p in clip.parameters()) < weights
    torch.testing.assert_close(clip.text_embeddings("red circle", IMAGE_TEMPLATES), before)
    with pytest.raises(RuntimeError, match="released"):
        clip.text_embeddings("blue circle", IMAGE_TEMPLATES)
    assert clip.encode_images(torch.rand(2, 3, 32, 32)).shape[0] == 2
