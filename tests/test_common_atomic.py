"""text2live_geo.common.atomic: a write is all or nothing, under a temporary name no other writer shares."""
import json
import os

import pytest

from text2live_geo.common.atomic import atomic_write, atomic_write_json, atomic_write_text, temporary_path


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "report.json"
    atomic_write_json(path, {"done": 1}, durable=True)

    def half_then_fail(temporary):
        temporary.write_text('{"do')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"done": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"


def test_temporary_names_are_unique_hidden_and_keep_the_suffix(tmp_path):
    names = {temporary_path(tmp_path / "edited.mp4").name for _ in range(50)}
    assert len(names) == 50
    assert all(name.startswith(".edited.mp4.") and name.endswith(".tmp.mp4") for name in names)


def test_only_the_temporaries_of_gone_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from text2live_geo.common.atomic import remove_stale_temporaries

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    (tmp_path / "frames").mkdir()
    stale = [tmp_path / f".checkpoint.pt.{dead_pid}-0123abcd.tmp.pt",
             tmp_path / "frames" / f".00001.png.{dead_pid}-89abcdef.tmp.png"]
    live = tmp_path / f".report.json.{os.getpid()}-0123abcd.tmp.json"  # a writer still at work
    other = tmp_path / ".notes.tmp"  # not one of ours
    for path in [*stale, live, other]:
        path.write_text("half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert live.exists() and other.exists() and not any(path.exists() for path in stale)
