"""Training of the toy CLIP on the procedural toy world, by job:

- `config`: `TrainConfig`, every setting (each a flag of `scripts/train_toy_clip.py`);
- `model`: building a fresh toy CLIP, its image processor config, image and text embeddings;
- `views`: the training views (one seeded random view per scene);
- `data`: the training batches, a pure function of the seed and the step;
- `teacher`: the CNN shape teacher and its training;
- `losses`: the CLIP stage's loss and the distillation / shape / attention terms;
- `loop`: `train` (teacher, vision stage, CLIP stage, save).

    from toyworld.training import TrainConfig, train
    train(TrainConfig(seed=1))
"""
from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
