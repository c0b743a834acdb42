import math

import torch

from text2live_geo.augment import ViewAugmenter, resize_short, view_shape


def test_view_shape_keeps_aspect_and_caps_long_side():
    # torchvision's Resize(224, max_size=320): short side 224, long side int(224 * long / short);
    # above 320 the long side is 320 and the short side int(320 * 224 / that long side)
    assert view_shape(512, 512, 224, 320 / 224) == (224, 224)
    assert view_shape(300, 400, 224, 320 / 224) == (224, 298)  # int(298.67)
    assert view_shape(200, 800, 224, 320 / 224) == (80, 320)  # long 896 > 320: int(320 * 224 / 896) = 80
    assert view_shape(800, 200, 224, 320 / 224) == (320, 80)
    assert view_shape(432, 768, 224, 320 / 224) == (180, 320)  # int(320 * 224 / 398)
    assert view_shape(432, 768, 224, 380 / 224) == (213, 380)  # structure tokens: max_size 380
    assert view_shape(60, 80, 32, float("inf")) == (32, 42)
    for height, width in ((300, 400), (200, 800), (432, 768), (900, 500)):
        h, w = view_shape(height, width, 224, 320 / 224)
        assert max(h, w) <= 320 and min(h, w) <= 224
        assert abs(w / h - width / height) < 0.02 * width / height + 1 / min(h, w)  # aspect kept


def test_paired_views_identical_for_identical_images():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 60, 80)
    first, second = ViewAugmenter(8, 32)(image, image.clone())
    assert first.shape == (8, 3, 32, 42)
    assert torch.equal(first, second)


def test_paired_views_share_geometry_for_different_images():
    # a pointwise change of the input (x -> 1 - x) must give views related the same way,
    # up to colour jitter, which is off here
    torch.manual_seed(1)
    image = torch.rand(1, 3, 40, 40)
    augment = ViewAugmenter(6, 24, jitter_p=0.0, gray_p=0.0, fill=0.5)
    views, inverted = augment(image, 1 - image)
    torch.testing.assert_close(inverted, 1 - views, atol=1e-5, rtol=0)


def test_views_differ_between_draws_and_first_view_is_whole_image():
    torch.manual_seed(2)
    ramp = torch.linspace(0, 1, 48)
    image = torch.stack([ramp[None, :].expand(48, 48), ramp[:, None].expand(48, 48), torch.full((48, 48), 0.5)])[None]
    augment = ViewAugmenter(4, 24, flip_p=0, affine_p=0, perspective_p=0, jitter_p=0, gray_p=0)
    views, = augment(image)
    whole = resize_short(image, 24, 10.0)
    # view 0 is the whole image (crop_and_resize vs area resize: close, not equal)
    assert (views[0] - whole[0]).abs().mean() < 0.02
    assert (views[1] - whole[0]).abs().mean() > (views[0] - whole[0]).abs().mean()
    again, = augment(image)
    assert not torch.equal(views, again)


def test_fill_colour_revealed_by_warps():
    torch.manual_seed(3)
    black = torch.zeros(1, 3, 32, 32)
    white_fill, = ViewAugmenter(16, 32, affine_p=1.0, perspective_p=1.0, jitter_p=0, gray_p=0, fill=1.0)(black)
    assert white_fill.max() > 0.99  # white shows where the warp left the image
    black_fill, = ViewAugmenter(16, 32, affine_p=1.0, perspective_p=1.0, jitter_p=0, gray_p=0, fill=0.0)(black)
    assert black_fill.max() < 1e-5


def test_gradients_reach_the_image():
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    views, = ViewAugmenter(4, 16)(image)
    views.mean().backward()
    assert image.grad.abs().sum() > 0


def test_crop_views_are_the_crop_boxes_resized():
    # without warps, view i is exactly the bilinear resize of crop box i (kornia's crop_and_resize
    # uses the same corner-to-corner convention), from the one batched grid_sample
    from kornia.geometry.transform import crop_and_resize

    torch.manual_seed(4)
    image = torch.rand(1, 3, 30, 32)  # below the antialiased pre-downscale size (20 / 0.6)
    augment = ViewAugmenter(6, 20, flip_p=0, affine_p=0, perspective_p=0, jitter_p=0, gray_p=0)
    torch.manual_seed(5)
    views, = augment(image)
    torch.manual_seed(5)
    boxes = augment.crop_boxes(30, 32, image.device)
    expected = crop_and_resize(image.expand(6, -1, -1, -1), boxes, view_shape(30, 32, 20, 320 / 224), mode="bilinear",
                               align_corners=True)
    torch.testing.assert_close(views, expected, atol=1e-5, rtol=0)


def test_flip_mirrors_the_view():
    torch.manual_seed(6)
    image = torch.rand(1, 3, 30, 30)
    plain = ViewAugmenter(5, 16, flip_p=0, affine_p=0, perspective_p=0, jitter_p=0, gray_p=0)
    flipped = ViewAugmenter(5, 16, flip_p=1, affine_p=0, perspective_p=0, jitter_p=0, gray_p=0)
    torch.manual_seed(7)
    views, = plain(image)
    torch.manual_seed(7)
    mirrored, = flipped(image)
    torch.testing.assert_close(mirrored, views.flip(-1), atol=1e-5, rtol=0)


def test_colour_jitter_follows_torchvision_semantics():
    from kornia.color import rgb_to_grayscale
    from kornia.enhance import adjust_hue

    from text2live_geo.augment import colour_jitter

    torch.manual_seed(8)
    images = torch.rand(2, 3, 8, 8) * 0.6 + 0.2
    grey = rgb_to_grayscale(images)
    torch.testing.assert_close(colour_jitter(images, torch.tensor([0.1, 0, 0, 0])), (images * 1.1).clamp(0, 1))
    mean = grey.mean((-2, -1), keepdim=True)
    torch.testing.assert_close(colour_jitter(images, torch.tensor([0, -0.1, 0, 0])), 0.9 * images + 0.1 * mean)
    torch.testing.assert_close(colour_jitter(images, torch.tensor([0, 0, 0.1, 0])),
                               (1.1 * images - 0.1 * grey).clamp(0, 1))
    torch.testing.assert_close(colour_jitter(images, torch.tensor([0, 0, 0, 0.05])),
                               adjust_hue(images, torch.tensor(0.05 * 2 * math.pi)), atol=1e-5, rtol=0)
    # per-image offsets (B, 4), and gradients through the checkpointed hue shift
    leaf = images.clone().requires_grad_(True)
    out = colour_jitter(leaf, torch.tensor([[0.05, 0.05, 0.05, 0.05], [-0.05, -0.05, -0.05, -0.05]]))
    out.sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
