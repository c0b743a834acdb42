"""text2live_geo.apps.batch.executors: a crashed local worker is the clip's failure (the next clip gets a
fresh worker); the Ray executor on a local instance bound to 127.0.0.1 gives the same outputs and
report as the local one; Ray missing or its cluster unreachable is one line, within seconds."""
import ipaddress
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from batch_clips import check_first_report, make_clips, tiny_settings
from text2live_geo.apps.batch import run_batch
from text2live_geo.apps.batch.config import RayConfig
from text2live_geo.apps.batch.executors import LocalExecutor, RayExecutor, _take, check_reachable
from text2live_geo.apps.batch.jobs import BatchError, ClipJob
from text2live_geo.apps.cli import batch as batch_cli


class Recorder:
    def __init__(self, kill_worker_of=()):
        self.kill_worker_of, self.events = set(kill_worker_of), []

    def started(self, name, where):
        self.events.append(("started", name, where))
        if name in self.kill_worker_of:  # the worker dies as the OOM killer would end it
            for child in multiprocessing.active_children():
                if child.name.startswith("t2l-batch-worker"):
                    os.kill(child.pid, signal.SIGKILL)

    def finished(self, outcome):
        self.events.append(("finished", outcome.name, outcome.status, outcome.error))


def _job(name, tmp_path):
    # an image that is not there: the edit fails at once with a user error
    return ClipJob(name=name, label=name, source=str(tmp_path / f"{name}.png"), kind="image",
                   settings_yaml=f"image: {tmp_path / name}.png\n", settings_hash="h", run_dir=str(tmp_path / name))


def test_a_crashed_worker_fails_its_clip_and_the_next_clip_gets_a_fresh_one(tmp_path):
    recorder = Recorder(kill_worker_of={"first"})
    LocalExecutor(workers=1, threads=1).run([_job("first", tmp_path), _job("second", tmp_path)], recorder)
    finished = [event for event in recorder.events if event[0] == "finished"]
    assert finished[0][1:3] == ("first", "failed")
    assert "the worker process editing it died (killed by SIGKILL, out of memory?)" in finished[0][3]
    assert finished[1][1:3] == ("second", "failed") and "image not found" in finished[1][3]
    assert not [c for c in multiprocessing.active_children() if c.name.startswith("t2l-batch-worker")]


def test_clips_of_one_group_never_run_at_once(tmp_path):
    first, second, other = (_job(name, tmp_path) for name in ("fg", "bg", "other"))
    first.group = second.group = "atlas fit of swan.mp4"
    queue = [first, second, other]
    assert _take(queue, set()) is first
    assert _take(queue, {"atlas fit of swan.mp4"}) is other  # bg waits for fg's atlas
    assert _take(queue, {"atlas fit of swan.mp4"}) is None and _take(queue, set()) is second


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_ray_address_fails_within_seconds(tmp_path, capsys):
    port = _free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(BatchError, match=f"cannot reach the Ray cluster at ray.address=127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(BatchError, match="ray://127.0.0.1"):
        check_reachable(f"ray://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - start < 5

    manifest = make_clips(tmp_path, videos=0, image=False, broken=True)
    pytest.importorskip("ray")
    code = batch_cli.main(["--quiet", str(manifest), "executor=ray", f"ray.address=127.0.0.1:{port}",
                           f"output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot reach the Ray cluster") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing written
    assert time.monotonic() - start < 15


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    manifest = make_clips(tmp_path, videos=0, image=False, broken=True)
    code = batch_cli.main(["--quiet", str(manifest), "executor=ray", f"output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and err == 'error: executor=ray needs Ray, an optional extra: pip install ' \
                                '"text2live_geo[distributed]"\n'
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def _descendants(pid: int) -> set[int]:
    """The processes started (directly or not) by process `pid`, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _listening_addresses(pids: set[int]) -> list:
    """Local addresses of the TCP sockets in LISTEN state that processes `pids` hold (/proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                if len(raw) == 4:
                    address = ipaddress.IPv4Address(raw[::-1])
                else:  # IPv6, four little-endian words; an IPv4 address mapped into it counts as itself
                    address = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                    address = address.ipv4_mapped or address
                addresses.append(address)
    return addresses


def test_the_ray_executor_on_a_local_instance_gives_the_same_report(tmp_path, tiny_clip_dir, monkeypatch):
    pytest.importorskip("ray")
    manifest = make_clips(tmp_path, videos=3, image=True, broken=True)
    # RAY_ADDRESS names a cluster that is not there: the local instance must not try to join it
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    executor = RayExecutor(RayConfig(local_cpus=2))
    executor.open()  # the local instance run_batch starts: on the loopback address only
    try:
        import ray

        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        # every socket the instance's processes listen on is a loopback one
        listening = _listening_addresses(_descendants(os.getpid()))
        assert listening, "found no listening socket of the Ray processes"
        assert all(address.is_loopback for address in listening), listening
        result = run_batch(manifest, None, tiny_settings(tiny_clip_dir, tmp_path / "runs", executor="ray"),
                           progress=False)  # joins the open session
    finally:
        executor.close()
    assert not result.ok
    check_first_report(tmp_path / "runs" / "clips-batch")
