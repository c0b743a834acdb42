"""benchmarks/bench_atlas.py's comparison: equal time is what is reported; a speed-up only when
both recipes reached 30 dB (never from an extrapolated time)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_atlas():
    spec = importlib.util.spec_from_file_location("bench_atlas", ROOT / "benchmarks" / "bench_atlas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recipe(seconds_to_30, extrapolated, final_db, seconds, budget=600.0, finished=True, marks=None):
    return {"budget_seconds": budget, "seconds": seconds, "final_psnr_db": final_db, "iterations": 100,
            "finished": finished, "psnr_at_marks": marks or {"10": None},
            "seconds_to": {"30": {"seconds": seconds_to_30, "extrapolated": extrapolated}}}


def test_extrapolated_time_gives_no_speedup_but_an_equal_time_comparison(capsys):
    bench = _bench_atlas()
    results = {"ours": _recipe(4.4, False, 40.11, 188.0, marks={"10": 40.35}),
               "nla": _recipe(29805.0, True, 14.02, 2405.0, finished=False)}
    ratio, note = bench.speedup(results)
    assert ratio is None and "not measured" in note and "extrapolated" in note
    same = bench.equal_time(results)
    # ours finished its iterations before 10 min: its final full-frame PSNR is what it had then
    assert same == {"minutes": 10.0, "ours_psnr_db": 40.11, "nla_psnr_db": 14.02, "nla_iterations": 100,
                    "nla_finished": False}
    bench.print_comparison(results)
    printed = capsys.readouterr().out
    assert "ours 40.11 dB, NLA's recipe 14.02 dB" in printed and "atlas_speedup_vs_nla: -" in printed


def test_measured_times_give_a_speedup():
    bench = _bench_atlas()
    results = {"ours": _recipe(5.0, False, 40.0, 700.0, marks={"10": 39.5}),
               "nla": _recipe(400.0, False, 31.0, 600.0, finished=False)}
    ratio, note = bench.speedup(results)
    assert ratio == 80.0 and note == "both measured"
    assert bench.equal_time(results)["ours_psnr_db"] == 39.5  # still fitting at 10 min: its curve's value then
