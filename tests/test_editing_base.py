"""text2live_geo.editing.base: what an editor subclass must provide."""
import pytest

from text2live_geo.editing.base import GeneratorTraining
from text2live_geo.editing.image import ImageEditor
from text2live_geo.editing.video import VideoEditor


def test_generator_training_declares_the_methods_a_subclass_provides():
    assert GeneratorTraining.__abstractmethods__ == {"training_step", "has_bootstrap_target"}

    class Incomplete(GeneratorTraining):
        def has_bootstrap_target(self) -> bool:
            return False

    with pytest.raises(TypeError, match="training_step"):
        Incomplete()
    assert not ImageEditor.__abstractmethods__ and not VideoEditor.__abstractmethods__
