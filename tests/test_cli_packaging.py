"""What every command-line tool shares: one UserError base turned into one line and exit 2, the
entry points pyproject.toml declares, config defaults without a source checkout, light imports."""
import argparse
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from atlas import AtlasCheckpointError
from text2live_geo.apps import cli
from text2live_geo.clip import ClipLoadError
from text2live_geo.common.config import ConfigError
from text2live_geo.common.errors import UserError
from text2live_geo.common.io import InputError
from text2live_geo.common.runs import RunError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", [ConfigError, InputError, ClipLoadError, RunError, AtlasCheckpointError])
def test_every_user_facing_error_is_a_user_error(kind):
    assert issubclass(kind, UserError)


def test_any_user_error_is_one_line_and_exit_2_and_a_bug_keeps_its_traceback(capsys):
    class NewMistake(UserError):
        pass

    def fails_with(error):
        def main(args):
            raise error
        return main

    parser = argparse.ArgumentParser()
    assert cli.run_cli(fails_with(NewMistake("the file is wrong: pass another")), parser, []) == 2
    assert capsys.readouterr().err == "error: the file is wrong: pass another\n"
    with pytest.raises(ZeroDivisionError):
        cli.run_cli(fails_with(ZeroDivisionError("a bug")), parser, [])


def test_entry_points_name_the_package_mains():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"t2l-image", "t2l-video", "t2l-atlas", "t2l-batch", "t2l-app"}
    for target in scripts.values():
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name)), target


def test_base_config_is_the_checkouts_yaml_and_optional_without_one(monkeypatch, tmp_path):
    assert cli.base_config("image") == ROOT / "configs" / "image" / "base.yaml"
    assert cli.base_config("video") == ROOT / "configs" / "video" / "base.yaml"
    assert cli.base_config("atlas") == ROOT / "configs" / "atlas" / "base.yaml"
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)  # an installed package: no configs/ next to it
    assert cli.base_config("image") is None and cli.base_config("video") is None
    assert cli.base_config("atlas") is None


@pytest.mark.parametrize("tool", ["image", "video", "batch"])
def test_module_help_from_another_directory(tool, tmp_path):
    result = subprocess.run([sys.executable, "-m", f"text2live_geo.apps.cli.{tool}", "--help"], cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("--resume" in result.stdout or tool == "batch") and "text.src" in result.stdout


def test_importing_the_losses_pulls_in_neither_the_atlas_package_nor_the_cli():
    code = ("import sys, text2live_geo.losses; "
            "print(sorted(m for m in sys.modules if m.startswith(('atlas', 'text2live_geo.apps.cli', "
            "'text2live_geo.editing'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "[]"


def test_the_package_root_still_exports_the_editors():
    import text2live_geo
    from text2live_geo.editing import edit_image, edit_video

    assert text2live_geo.edit_image is edit_image and text2live_geo.edit_video is edit_video
    assert not hasattr(text2live_geo, "no_such_name")


def test_the_wheel_holds_every_layer_and_not_the_toy_world():
    """The packages setuptools puts in the wheel (pyproject's `packages.find`): every layer's folder,
    and nothing of toyworld, which stays in the repository for the scripts and tests."""
    import tomllib

    from setuptools import find_packages

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(where=str(ROOT), include=include))
    assert {"text2live_geo.common", "atlas", "atlas.fitting", "text2live_geo.losses", "text2live_geo.editing",
            "text2live_geo.apps.cli", "text2live_geo.apps.batch"} <= packages
    assert not [name for name in packages if name.startswith(("toyworld", "tests", "benchmarks"))]
