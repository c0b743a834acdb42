"""text2live_geo.apps.batch.report: the summary line, report.json's rows, report.html (escaped, one row
per clip, reloading itself while the batch runs), both written atomically."""
import json

from text2live_geo.apps.batch.jobs import ClipJob, ClipOutcome
from text2live_geo.apps.batch.report import BatchReport, ClipRow, summary_line


def _row(name, status="pending", error=None, label=None):
    row = ClipRow(name=name, source=f"/clips/{name}.mp4", kind="video", label=label or f"{name}.mp4",
                  run_dir=f"/runs/b/{name}")
    row.status, row.error = status, error
    return row


def test_summary_line_counts_done_failed_and_unfinished():
    done = [_row(f"c{i}", "done") for i in range(7)]
    assert summary_line(done) == "7 of 7 clips done"
    assert summary_line([*done, _row("broken", "failed", "could not decode video file")]) == \
        "7 of 8 clips done; 1 failed: broken.mp4: could not decode video file"
    assert summary_line([_row("a", "failed", "x"), _row("b", "failed", "y"), _row("c")]) == \
        "0 of 3 clips done; 2 failed: a.mp4: x; b.mp4: y; 1 not finished (rerun the same command to continue)"


def test_report_files_hold_every_row_and_are_rewritten_whole(tmp_path):
    rows = [_row("swan"), _row("<b>bad</b>", label="<b>bad</b>.mp4")]
    report = BatchReport(tmp_path, rows, title="t2l-batch: shoot", details={"input": "/clips"})
    report.write()
    data = json.loads((tmp_path / "report.json").read_text())
    assert [row["status"] for row in data["clips"]] == ["pending", "pending"]
    assert set(data["clips"][0]) >= {"name", "source", "status", "error", "seconds", "psnr_db", "run_dir"}
    assert 'http-equiv="refresh"' in (tmp_path / "report.html").read_text()  # still running: reloads

    job = ClipJob(name="swan", label="swan.mp4", source="/clips/swan.mp4", kind="video", settings_yaml="",
                  settings_hash="h", run_dir="/runs/b/swan")
    assert ClipRow.of(job).run_dir == "/runs/b/swan"
    rows[0].record(ClipOutcome(name="swan", status="done", seconds=12.5, psnr_db=31.24, losses={"total": 1.5},
                               previews={"before": ".report/swan/before.png", "after": ".report/swan/after.png"},
                               steps=3))
    rows[1].record(ClipOutcome(name="<b>bad</b>", status="failed", error="out of GPU memory: <tried 2 GiB>"))
    report.finished = True
    report.write()
    page = (tmp_path / "report.html").read_text()
    assert page.count("<tr>") == 3 and "http-equiv" not in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad</b>" not in page  # names and errors are escaped
    assert "out of GPU memory: &lt;tried 2 GiB&gt;" in page
    assert 'src="./.report/swan/after.png"' in page and "31.2" in page and "total 1.5" in page and "12.5" in page
    assert "1 of 2 clips done; 1 failed: &lt;b&gt;bad&lt;/b&gt;.mp4: out of GPU memory" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]  # no temporaries left
