"""A procedural toy world (coloured, textured shapes with exact masks and captions) and the
toy CLIP trained on it, which gives the project real CLIP semantics offline."""
from .world import *  # noqa: F403
from .world import __all__  # noqa: F401
