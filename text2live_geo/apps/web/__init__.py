"""The web app (`t2l-app`): edit an image, a clip or a folder of clips in the browser, watch the edit
form, stop it, continue it, download every layer (docs/app.md).

An application beside the command lines: its jobs call the same library APIs (`edit_image`,
`edit_video`, the cached atlas fit, `run_batch`) and write the same run folders. `jobs` holds what the
jobs do without Gradio; `ui` builds the page and its API endpoints; `config` is the app's own settings.
Gradio is the optional extra `text2live_geo[app]`.
"""
from __future__ import annotations

import os

# no usage reports from Gradio (these machines have no network; the app sends nothing anywhere)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
