"""text2live_geo/clip.py, `warn_unknown_words`: a model folder that ships `known_words.json` (the
toy CLIP) gets a one-line warning for the words of a text it never saw; the edit still runs."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from conftest import TINY_WORDS, tiny_overrides
from text2live_geo.clip import IMAGE_TEMPLATES, SCREEN_TEMPLATES, ClipGuide, warn_unknown_words

ROOT = Path(__file__).resolve().parents[1]
TOY_CLIP = ROOT / "data" / "toy_clip"
WORDS = {"model": "toy CLIP", "shapes": ["circle", "square"], "colours": ["red", "blue"], "textures": ["plain"],
         "other words": ["a", "photo", "of"]}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "text2live_geo.clip" and r.levelno == logging.WARNING]


def test_unknown_words_are_named_with_what_the_model_knows(tmp_path, caplog):
    (tmp_path / "known_words.json").write_text(json.dumps(WORDS))
    with caplog.at_level(logging.WARNING):
        warn_unknown_words(str(tmp_path), "a photo of a Blue cat, a red dog and a cat.")
    [message] = _warnings(caplog)
    assert message == ("the toy CLIP never saw 'cat', 'dog', 'and' (it knows shapes: circle, square; "
                       "colours: red, blue; textures: plain); the edit runs, but expect no meaning from those words")


def test_known_texts_and_folders_without_the_file_give_no_warning(tmp_path, caplog):
    (tmp_path / "known_words.json").write_text(json.dumps(WORDS))
    with caplog.at_level(logging.WARNING):
        warn_unknown_words(str(tmp_path), "a photo of red circle.")
        warn_unknown_words(str(tmp_path / "missing"), "a cat")
        warn_unknown_words(str(tmp_path.parent), "a cat")  # a folder without the file
        warn_unknown_words("openai/clip-vit-base-patch32", "a cat")  # a hub id
        warn_unknown_words("", "a cat")  # a model not loaded from a folder
    assert _warnings(caplog) == []


@pytest.mark.skipif(not (TOY_CLIP / "known_words.json").is_file(), reason="data/toy_clip/known_words.json is missing")
def test_shipped_toy_clip_warns_once_per_new_text(caplog):
    guide = ClipGuide.load(str(TOY_CLIP))
    with caplog.at_level(logging.WARNING):
        guide.text_embeddings("red circle", IMAGE_TEMPLATES)
        assert _warnings(caplog) == []
        guide.text_embeddings("blue cat", IMAGE_TEMPLATES)  # comp and screen: one text, two template sets
        guide.text_embeddings("blue cat", SCREEN_TEMPLATES)
    [message] = _warnings(caplog)
    assert message.startswith("the toy CLIP never saw 'cat' (it knows shapes: circle, square, triangle")
    assert "colours: red, orange" in message and "textures: plain, striped" in message


def test_real_clip_without_the_file_is_not_checked(tiny_clip, caplog):
    with caplog.at_level(logging.WARNING):
        tiny_clip.text_embeddings("golden zebra", IMAGE_TEMPLATES)
    assert _warnings(caplog) == []


def test_edit_with_unknown_words_runs_and_warns(tiny_clip_dir, image_path, tmp_path, caplog):
    from text2live_geo import edit_image

    model = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, model)
    (model / "known_words.json").write_text(json.dumps({"model": "toy CLIP", "other words": list(TINY_WORDS)}))
    with caplog.at_level(logging.WARNING):
        result = edit_image(None, tiny_overrides(image_path, model, tmp_path / "out", steps=2,
                                                 **{"text.comp": "blue zebra", "text.screen": "blue zebra"}),
                            progress=False)
    assert result is not None
    assert [m for m in _warnings(caplog) if "never saw 'zebra'" in m] and len(_warnings(caplog)) == 1
