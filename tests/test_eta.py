"""ETAs from measured seconds per step: the edit's progress bar and its log lines, and the batch's."""
import logging
import re
import time

import pytest
from tqdm import tqdm

from conftest import tiny_overrides
from text2live_geo.apps.batch.jobs import ClipOutcome, ClipStatus
from text2live_geo.apps.batch.report import ClipRow
from text2live_geo.apps.batch.run import _Progress
from text2live_geo.common.eta import duration_text, eta_text


def test_duration_and_eta_texts():
    assert [duration_text(s) for s in (0, 42.4, 187, 3900, -3)] == ["0 s", "42 s", "3 min 07 s", "1 h 05 min", "0 s"]
    assert eta_text(10.0, 4, 6) == "2.50 s/step, ETA 15 s"
    assert eta_text(0.0, 0, 6) == "ETA unknown yet"


def test_an_edit_shows_its_eta_on_the_bar_and_in_its_log(tiny_clip_dir, image_path, tmp_path, capsys, caplog):
    from text2live_geo import edit_image

    with caplog.at_level(logging.DEBUG, logger="text2live_geo.editing.base"):
        edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=4, snapshot_every=0), progress=True)
    bar = capsys.readouterr().err
    # tqdm's [elapsed<remaining]: the remaining time from the measured rate, at every update after the first
    assert re.search(r"edit: +50%.*\| 2/4 \[\d\d:\d\d<\d\d:\d\d", bar), bar[-500:]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert lines and all(re.match(r"step \d/4 \(\d+\.\d s, \d+\.\d\d s/step, ETA \d+ s\): ", line) for line in lines)
    assert lines[-1].startswith("step 4/4") and "ETA 0 s" in lines[-1]


class _Report:
    def __init__(self, rows):
        self.rows, self.writes = rows, 0

    def row(self, name):
        return next(row for row in self.rows if row.name == name)

    def write(self):
        self.writes += 1


def test_the_batch_eta_is_its_wall_time_per_step_times_the_steps_left(caplog):
    rows = [ClipRow(name=f"c{i}", source="", kind="video", label=f"c{i}", run_dir="") for i in range(5)]
    rows[0].record(ClipOutcome(name="c0", status=ClipStatus.done.value, seconds=1.0, steps=100), reused=True)
    events = _Progress(_Report(rows), tqdm(total=5, disable=True))
    assert events.eta() is None  # nothing finished in this run yet (a reused clip says nothing of its speed)
    events.start = time.perf_counter() - 40.0  # 40 s of this batch so far
    with caplog.at_level(logging.INFO, logger="text2live_geo.apps.batch.run"):
        events.finished(ClipOutcome(name="c1", status=ClipStatus.done.value, seconds=30.0, steps=10))
        events.finished(ClipOutcome(name="c2", status=ClipStatus.done.value, seconds=30.0, steps=30))
    seconds, left, per_step = events.eta()
    assert left == 2 and per_step == pytest.approx(1.0, rel=0.05)  # 40 s over the 40 steps finished here
    assert seconds == pytest.approx(2 * 20 * per_step)  # 2 clips left x their mean 20 steps
    messages = [r.getMessage() for r in caplog.records if "batch ETA" in r.getMessage()]
    assert len(messages) == 2 and "3 clip(s) left" in messages[0] and "2 clip(s) left" in messages[1]
    events.finished(ClipOutcome(name="c3", status=ClipStatus.failed.value, error="x"))
    events.finished(ClipOutcome(name="c4", status=ClipStatus.done.value, seconds=3.0, steps=10))
    assert events.eta() is None  # none left
