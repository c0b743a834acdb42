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
    encoded = []
    original = tiny_clip.encode_texts
    tiny_clip.encode_texts = lambda texts, **kw: encoded.append(texts) or original(texts, **kw)
    try:
        assert torch.equal(tiny_clip.text_embeddings("red circle", IMAGE_TEMPLATES), first)
        raw = tiny_clip.text_embeddings("red circle", IMAGE_TEMPLATES, normalize=False)
    finally:
        del tiny_clip.encode_texts
    assert encoded == []  # both from the cache
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(len(IMAGE_TEMPLATES)))
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), first)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(len(IMAGE_TEMPLATES)))  # CLIP's raw projection
    assert not torch.allclose(first[0], tiny_clip.text_embeddings("blue square", IMAGE_TEMPLATES)[0])
    image = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(torch.nn.functional.normalize(tiny_clip.encode_images(image, normalize=False), dim=-1),
                               tiny_clip.encode_images(image))


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


def _last_block_relevancy(clip, image, text):
    """Chefer relevancy with the last block only, the raw text and the logit-scaled score,
    computed independently of ClipGuide.relevancy (autograd.grad on the attention probabilities)."""
    model = clip.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        tokens = clip.tokenizer([text], padding=True, return_tensors="pt")
        text_output = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        text_embed = torch.nn.functional.normalize(model.text_projection(text_output.pooler_output), dim=-1)
        pixels = clip.normalize(image).requires_grad_(True)  # the model is frozen: grads flow from the input
        out = model.vision_model(pixel_values=pixels, interpolate_pos_encoding=True, output_attentions=True)
        image_embed = torch.nn.functional.normalize(model.visual_projection(out.pooler_output), dim=-1)
        logit = model.logit_scale.exp() * (image_embed * text_embed).sum()
        grads = torch.autograd.grad(logit, out.attentions)
    finally:
        model.set_attn_implementation(previous)
    last, grad = out.attentions[-1].detach(), grads[-1]
    cam = (grad * last).clamp(min=0).mean(dim=1)[0]
    relevance = torch.eye(cam.shape[-1]) + cam  # R = I + cam @ I
    height, width = image.shape[-2:]
    grid = relevance[0, 1:].reshape(1, 1, height // 8, width // 8)
    grid = torch.nn.functional.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
    return (grid - grid.min()) / (grid.max() - grid.min())


def test_relevancy_is_the_last_block_the_raw_text_and_the_logit(tiny_clip):
    torch.manual_seed(3)
    image = torch.rand(1, 3, 32, 48)
    relevancy = tiny_clip.relevancy(image, "red circle")
    torch.testing.assert_close(relevancy, _last_block_relevancy(tiny_clip, image, "red circle"),
                               atol=1e-5, rtol=1e-4)
    # the earlier blocks do not enter: starting one block earlier gives another map
    two_blocks = tiny_clip.relevancy(image, "red circle", start_layer=tiny_clip.num_layers - 2)
    assert (two_blocks - relevancy).abs().max() > 1e-3
    # the raw text, not a template: a template changes the map
    templated = tiny_clip.relevancy(image, "red circle", templates=("a photo of {}.",))
    assert (templated - relevancy).abs().max() > 1e-4
    # with one block, the positive logit scale cancels in the min-max normalisation
    assert tiny_clip.model.logit_scale.exp() > 1
