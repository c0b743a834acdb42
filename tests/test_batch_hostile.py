"""A batch under hostile or unlucky input: names that collide, hide, are reserved or hold control
characters; manifests with interpolations and generated entries; broken media. For each: the
exit status, one line, no traceback, every other clip done, every clip in a folder of its own, and
nothing written before overwritten, moved or lost (hashes of every output before and after)."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from batch_clips import rows, tiny_settings
from text2live_geo.apps.batch.discover import (
    MAX_NAME_BYTES,
    RESERVED_NAMES,
    check_name,
    discover_clips,
    display_label,
    safe_name,
    unique_names,
)
from text2live_geo.apps.batch.jobs import BatchError
from text2live_geo.apps.batch.settings import compose_jobs, load_batch_settings
from text2live_geo.common.config import load_config
from text2live_geo.config import ImageEditConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
#: the batch folder's own entries; no clip folder may be one of them (in any case)
BATCH_OWN = {".batch", ".report", ".superseded", ".atlas_cache", "report.json", "report.html"}
SEEDED = settings(derandomize=True, max_examples=200, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


def _image(path: Path, colour=(200, 30, 30)) -> Path:
    array = np.full((40, 48, 3), 128, np.uint8)
    array[10:30, 12:30] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def _hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file below `folder` (the report files, which the batch rewrites, left out)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in ("report.json", "report.html")
            and ".batch" not in p.parts}


# ------------------------------------------------------------------ the name rule, generated
def _is_safe(name: str) -> bool:
    return (bool(name) and not name.startswith((".", " ")) and not name.endswith((".", " "))
            and not any(c in '/\\<>:"|?*' or ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in name)
            and len(name.encode("utf-8")) <= MAX_NAME_BYTES + len("-clip")
            and name.casefold() not in RESERVED_NAMES and name.casefold() not in BATCH_OWN)


@SEEDED
@given(st.text(max_size=300))
def test_any_text_becomes_a_safe_folder_name_and_stays_one(raw):
    name = safe_name(raw)
    assert _is_safe(name), (raw, name)
    assert safe_name(name) == name  # a safe name is left as it is (so a manifest may give it)
    assert check_name(name, "here") == name


@SEEDED
@given(st.lists(st.sampled_from(["x", "X", "x-2", "report.json-clip", "clip", "a", "A", "é", "É"]), max_size=12),
       st.sets(st.sampled_from(["x", "a", "clip"]), max_size=2))
def test_unique_names_ignore_case_and_keep_order_and_explicit_names(names, taken):
    unique = unique_names(names, taken=set(taken))
    assert len(unique) == len(names)
    folded = [name.casefold() for name in unique]
    assert len(set(folded)) == len(folded) and not set(folded) & set(taken)
    for name, given_name in zip(unique, names):
        assert name == given_name or re.fullmatch(re.escape(given_name) + r"-\d+", name)


@pytest.mark.parametrize("name", [".batch", "a/b", "report.json", "REPORT.HTML", "con", "x\ny", " x", "x.", ""])
def test_an_unsafe_name_given_in_a_manifest_is_refused_with_one_line(name):
    with pytest.raises(BatchError) as error:
        check_name(name, "manifest 'm.yaml', entry 1")
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ folders and manifests
HOSTILE_FILES = ["x.png", "x.jpg", "x.png.webp", "A.png", "a.jpeg", "report.json.png", "report.html.png",
                 "con.png", "line\nbreak.png", "tab\there.png", "javascript:alert(document.title)%2F%2F.png",
                 " spaced .png", "dots...png", "é.png", "É.png"]


def test_hostile_file_names_get_unique_safe_folders_and_hidden_files_are_skipped(tmp_path):
    folder = tmp_path / "in"
    for name in HOSTILE_FILES + [".batch.png", ".atlas_cache.png", ".report.png", ".superseded.png"]:
        _image(folder / name)
    specs = discover_clips(folder)
    names = [spec.name for spec in specs]
    assert len(specs) == len(HOSTILE_FILES)  # the dot files are hidden: no clip
    assert len({name.casefold() for name in names}) == len(names)
    assert all(_is_safe(name) for name in names), names
    by_label = {spec.label: spec.name for spec in specs}
    assert by_label["report.json.png"] == "report.json-clip" and by_label["con.png"] == "con-clip"
    assert {by_label["x.png"], by_label["x.png.webp"]} == {"x.png", "x.png-2"}  # stem x.png meets full name x.png
    assert by_label["line\\nbreak.png"] == "line_break"  # the label shows the newline escaped
    # the same folder gives the same names on every run (a rerun finds its clips' folders)
    assert [spec.name for spec in discover_clips(folder)] == names


def test_manifest_names_explicit_ones_win_and_case_duplicates_are_refused(tmp_path):
    _image(tmp_path / "x.png")
    _image(tmp_path / "X.jpg")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"clips": ["x.png", "X.jpg", {"clip": "x.png", "name": "x"}]}))
    assert [spec.name for spec in discover_clips(manifest)] == ["x-2", "X-3", "x"]
    entries = [{"clip": "x.png", "name": "Clip"}, {"clip": "X.jpg", "name": "clip"}]
    manifest.write_text(yaml.safe_dump({"clips": entries}))
    with pytest.raises(BatchError, match="differ only in case"):
        discover_clips(manifest)


def test_manifest_values_are_taken_literally(tmp_path, tiny_clip_dir, monkeypatch):
    monkeypatch.setenv("T2L_TEST_SECRET", "hunter2")
    _image(tmp_path / "x.png")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"clips": [{"clip": "x.png", "text.comp": "${oc.env:T2L_TEST_SECRET}",
                                                   "text.screen": ["a ${x} b", "${"]}]}))
    _, edit = load_batch_settings(None, tiny_settings(tiny_clip_dir, tmp_path / "runs"))
    job = compose_jobs(discover_clips(manifest), edit, tmp_path / "runs" / "b")[0]
    assert "hunter2" not in job.settings_yaml
    saved = tmp_path / "config.yaml"
    saved.write_text(job.settings_yaml)  # what the clip's edit loads, and saves again
    cfg = load_config(ImageEditConfig, saved)
    assert cfg.text.comp == ["${oc.env:T2L_TEST_SECRET}"] and cfg.text.screen == ["a ${x} b", "${"]


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.one_of(
    st.sampled_from(["x.png", "./x.png", "missing.png", "", "sub", "x.png/"]),
    st.fixed_dictionaries({"clip": st.sampled_from(["x.png", "y.png", 7, None, "x.png"])},
                          optional={"name": st.one_of(st.text(max_size=12), st.integers()),
                                    "steps": st.one_of(st.integers(-3, 3), st.text(max_size=4)),
                                    "text.src": st.one_of(st.text(max_size=8), st.lists(st.text(max_size=5))),
                                    "no.such.key": st.integers(), "output_dir": st.text(max_size=3)}),
    st.integers(), st.none(), st.lists(st.integers(), max_size=2)), max_size=5))
def test_a_generated_manifest_either_composes_or_fails_with_one_clear_error(tmp_path_factory, tiny_clip_dir,
                                                                            entries):
    folder = tmp_path_factory.mktemp("manifest")
    _image(folder / "x.png")
    _image(folder / "y.png")
    (folder / "sub").mkdir()
    manifest = folder / "m.yaml"
    manifest.write_text(yaml.safe_dump({"clips": entries}))
    _, edit = load_batch_settings(None, tiny_settings(tiny_clip_dir, folder / "runs"))
    try:
        jobs = compose_jobs(discover_clips(manifest), edit, folder / "runs" / "b")
    except (BatchError, ValueError) as error:  # BatchError, ConfigError: the user's to fix, one line
        assert str(error) and "\n" not in str(error) and "Traceback" not in str(error)
        return
    names = [job.name for job in jobs]
    assert len({name.casefold() for name in names}) == len(names) and all(_is_safe(n) for n in names)


# ------------------------------------------------------------------ a real batch of hostile names
def _run_cli(folder: Path, *settings_list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_batch.py"), "--quiet", str(folder), *settings_list],
                          cwd=folder.parent, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_batch_of_hostile_names_and_broken_media_isolates_failures_and_loses_nothing(tmp_path, tiny_clip_dir):
    folder = tmp_path / "in"
    good = ["x.png", "x.png.webp", "A.png", "a.jpeg", "report.json.png", "line\nbreak.png",
            "javascript:alert(document.title)%2F%2F.png"]
    for name in good:
        _image(folder / name)
    (folder / "empty.png").write_bytes(b"")
    truncated = (tmp_path / "full.png")
    _image(truncated)
    (folder / "truncated.png").write_bytes(truncated.read_bytes()[:60])
    (folder / "not_a_video.mp4").write_bytes(b"\x00garbage" * 40)
    Image.new("RGB", (160, 120), (90, 90, 90)).save(folder / "oversize.png")  # over max_image_pixels below
    settings_list = tiny_settings(tiny_clip_dir, tmp_path / "runs", workers=1, steps=1,
                                  **{"crops.resize_short": 40, "max_image_pixels": 10_000})
    result = _run_cli(folder, *settings_list)
    batch_dir = tmp_path / "runs" / "in-batch"
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{len(good)} of {len(good) + 4} clips done; 4 failed: ")
    assert "max_image_pixels" in summary  # the oversize image's line says what to set
    assert (batch_dir / "report.json").is_file() and (batch_dir / "report.html").is_file()
    report_rows = rows(batch_dir)
    assert sorted(row["status"] for row in report_rows.values()) == ["done"] * len(good) + ["failed"] * 4
    assert all("\n" not in (row["error"] or "") for row in report_rows.values())
    run_dirs = [Path(row["run_dir"]) for row in report_rows.values()]
    assert len({str(p).casefold() for p in run_dirs}) == len(run_dirs)
    assert all(p.parent == batch_dir and p.name not in BATCH_OWN for p in run_dirs)
    # the report's links stay inside the batch folder: relative, ./-prefixed, URL-quoted
    page = (batch_dir / "report.html").read_text()
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and all(link.startswith("./") and ":" not in link and "\n" not in link for link in links)
    # a rerun redoes the failures only: nothing finished is touched, moved or lost
    before = _hashes(batch_dir)
    again = _run_cli(folder, *settings_list)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    after = _hashes(batch_dir)
    finished = [name for name, row in report_rows.items() if row["status"] == "done"]
    for key, digest in before.items():
        if key.split(os.sep)[0] in finished and not key.endswith("log.txt"):
            assert after.get(key) == digest, key
    assert not (batch_dir / ".superseded").exists()
    assert all(row["reused"] for row in rows(batch_dir).values() if row["status"] == "done")
    for name in finished:
        steps = [json.loads(line)["step"] for line in (batch_dir / name / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1], name
    # a newline in a file name is shown escaped: the report's label and every summary stay one line
    assert display_label("line\nbreak.png") in {row["label"] for row in report_rows.values()}


# ------------------------------------------------------------------ the lock
def test_a_batch_that_cannot_lock_its_folder_stops_unless_told_otherwise(tmp_path, monkeypatch, caplog):
    import errno

    from text2live_geo.apps.batch import run as batch_run

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(batch_run.fcntl, "flock", no_locks)
    with pytest.raises(BatchError, match="allow_unlocked=true") as error, batch_run._batch_folder(tmp_path / "b"):
        pass
    assert "\n" not in str(error.value)
    entered = []
    with caplog.at_level("WARNING"), batch_run._batch_folder(tmp_path / "b", allow_unlocked=True):
        entered.append(True)
    assert entered and "without the lock" in caplog.text


def test_a_second_batch_on_the_same_folder_is_refused(tmp_path):
    from text2live_geo.apps.batch import run as batch_run

    with batch_run._batch_folder(tmp_path / "b"), pytest.raises(BatchError, match="another batch"), \
            batch_run._batch_folder(tmp_path / "b"):
        pass
