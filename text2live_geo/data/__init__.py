"""Internal datasets: what each training step of an edit samples from its one input.

- `image_crops`: `CropSampler`, random crops (rescaled, flipped, colour-jittered) of the image.
- `atlas_crops`: `AtlasVideo` (the video's precomputed atlas input) and `AtlasCropSampler`, an
  atlas crop with the frame crops {t-2, t, t+2} it covers.

The submodules are imported by name, so an image edit does not load the atlas package.
"""
