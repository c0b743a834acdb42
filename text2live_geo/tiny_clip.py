"""Build small `transformers` CLIP models and word-level CLIP tokenizers on disk.

No pretrained CLIP can be downloaded on the development and CI machines, so tests and the
toy CLIP build their own: a `CLIPTokenizer` folder (vocab.json + merges.txt whose merges
assemble every vocabulary word into a single token) and a `CLIPModel` saved with
`save_pretrained`. Both load through exactly the same `from_pretrained` path as a hub model.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def write_word_tokenizer(folder: str | Path, words: Iterable[str]) -> int:
    """Write a CLIP BPE tokenizer whose merges turn each of `words` into one token.

    Every single character of the words (with and without the end-of-word marker `</w>`) is
    in the vocabulary, so any text over those characters tokenizes; the merges built here
    join each listed word left to right into one token. Returns the vocabulary size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # A stale fast-tokenizer file would take precedence over the files written here.
    (folder / "tokenizer.json").unlink(missing_ok=True)
    words = sorted({w.lower() for w in words if w.strip()})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"))
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        if token not in vocab:
            vocab[token] = len(vocab)

    for c in chars:
        add(c)
    for c in chars:
        add(c + "</w>")
    # Merges are added until every word comes out as one token under BPE's
    # lowest-rank-first rule; a merge added later has the highest rank, so it never changes
    # the path of a word that already ends as one token.
    merge_rank: dict[tuple[str, str], int] = {}
    changed = True
    while changed:
        changed = False
        for word in words:
            pieces = _bpe(list(word[:-1]) + [word[-1] + "</w>"], merge_rank)
            while len(pieces) > 1:
                merge_rank[(pieces[0], pieces[1])] = len(merge_rank)
                add(pieces[0] + pieces[1])
                pieces = _bpe(pieces, merge_rank)
                changed = True
    merges = [f"{a} {b}" for (a, b), _ in sorted(merge_rank.items(), key=lambda item: item[1])]
    add(BOS_TOKEN)
    add(EOS_TOKEN)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN, "model_max_length": 77, "do_lower_case": True,
    }))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": EOS_TOKEN,
    }))
    return len(vocab)


def _bpe(pieces: list[str], merge_rank: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges (lowest rank first, all occurrences) until none applies."""
    while len(pieces) > 1:
        pairs = [(merge_rank.get(pair), i, pair) for i, pair in enumerate(zip(pieces, pieces[1:]))]
        ranked = [p for p in pairs if p[0] is not None]
        if not ranked:
            break
        best = min(ranked)[2]
        merged: list[str] = []
        i = 0
        while i < len(pieces):
            if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == best:
                merged.append(pieces[i] + pieces[i + 1])
                i += 2
            else:
                merged.append(pieces[i])
                i += 1
        pieces = merged
    return pieces


def build_clip(
    folder: str | Path,
    words: Iterable[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_width: int = 32,
    vision_layers: int = 3,
    text_width: int = 32,
    text_layers: int = 2,
    heads: int = 2,
    projection_dim: int = 32,
    max_text_length: int = 32,
    seed: int = 0,
):
    """Create a randomly initialised `CLIPModel` + word tokenizer and save both to `folder`.

    The saved folder loads with `CLIPModel.from_pretrained(folder)` and
    `CLIPTokenizer.from_pretrained(folder)`, like a hub checkpoint. Returns the model.
    """
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    write_word_tokenizer(folder, words)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
            num_hidden_layers=text_layers, num_attention_heads=heads,
            max_position_embeddings=max_text_length, projection_dim=projection_dim,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=vision_width, intermediate_size=4 * vision_width,
            num_hidden_layers=vision_layers, num_attention_heads=heads,
            image_size=image_size, patch_size=patch_size, projection_dim=projection_dim,
        ),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(str(folder))
    tokenizer.model_max_length = max_text_length
    tokenizer.save_pretrained(str(folder))
    return model
