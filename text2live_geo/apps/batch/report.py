"""The batch's report: ``report.json`` (for scripts) and ``report.html`` (for a person), one row
per clip, both rewritten atomically whenever a clip starts or ends, so a long batch can be
watched (the HTML page reloads itself while the batch runs)."""
from __future__ import annotations

import html
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from ...common.atomic import atomic_write_json, atomic_write_text
from .discover import display_label
from .jobs import ClipJob, ClipOutcome, ClipStatus

__all__ = ["BatchReport", "ClipRow", "REPORT_HTML", "REPORT_JSON", "summary_line"]

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass
class ClipRow:
    """One clip in the report."""

    name: str
    source: str
    kind: str
    label: str
    run_dir: str
    status: str = ClipStatus.pending.value
    error: str | None = None
    seconds: float | None = None
    psnr_db: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    previews: dict[str, str] = field(default_factory=dict)
    steps: int | None = None
    host: str = ""
    reused: bool = False  # finished by an earlier run of the batch, with the same settings

    @classmethod
    def of(cls, job: ClipJob) -> ClipRow:
        return cls(name=job.name, source=job.source, kind=job.kind, label=job.label, run_dir=job.run_dir)

    def record(self, outcome: ClipOutcome, reused: bool = False) -> None:
        self.status, self.error, self.seconds = outcome.status, outcome.error, outcome.seconds
        self.psnr_db, self.losses, self.previews = outcome.psnr_db, dict(outcome.losses), dict(outcome.previews)
        self.steps, self.host, self.reused = outcome.steps, outcome.host, reused


def summary_line(rows: list[ClipRow]) -> str:
    """`7 of 8 clips done; 1 failed: broken.mp4: <reason>` (and how many did not run)."""
    done = sum(row.status == ClipStatus.done for row in rows)
    failed = [row for row in rows if row.status == ClipStatus.failed]
    left = len(rows) - done - len(failed)
    line = f"{done} of {len(rows)} clip{'s' if len(rows) != 1 else ''} done"
    if failed:
        line += f"; {len(failed)} failed: " + "; ".join(f"{display_label(row.label)}: {display_label(row.error or '')}"
                                                         for row in failed)
    if left:
        line += f"; {left} not finished (rerun the same command to continue)"
    return line




_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.done { color: #176f2c; font-weight: 600; } .failed { color: #b3261e; font-weight: 600; }
.running { color: #8a5a00; font-weight: 600; } .pending { color: #666; }
.error { color: #b3261e; max-width: 28em; } .losses { font-size: 0.85em; color: #444; }
img { width: 200px; height: auto; display: block; image-rendering: pixelated; }
"""


def _relative_url(relative_path: str) -> str:
    """A link to a file or folder of the batch folder: each part URL-quoted, after ``./``, so no
    clip name can be read as a scheme (``javascript:``) or leave the folder."""
    return "./" + "/".join(quote(part, safe="") for part in Path(relative_path).parts)


class BatchReport:
    """The rows of a batch and the two files they are written to."""

    def __init__(self, batch_dir: Path, rows: list[ClipRow], title: str, details: dict):
        self.batch_dir, self.rows, self.title, self.details = Path(batch_dir), rows, title, details
        self.finished = False

    def row(self, name: str) -> ClipRow:
        return next(row for row in self.rows if row.name == name)

    def to_json(self) -> dict:
        return {"batch": {**self.details, "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
                          "finished": self.finished, "summary": summary_line(self.rows)},
                "clips": [asdict(row) for row in self.rows]}

    def write(self) -> None:
        atomic_write_json(self.batch_dir / REPORT_JSON, self.to_json(), durable=True)
        atomic_write_text(self.batch_dir / REPORT_HTML, self.to_html())

    def to_html(self) -> str:
        escape = html.escape
        refresh = "" if self.finished else '<meta http-equiv="refresh" content="20">'
        cells = []
        for row in self.rows:
            before = (f'<img src="{escape(_relative_url(row.previews["before"]))}" alt="before">'
                      if "before" in row.previews else "")
            after = (f'<img src="{escape(_relative_url(row.previews["after"]))}" alt="after">'
                     if "after" in row.previews else "")
            losses = ", ".join(f"{key} {value:.4g}" for key, value in row.losses.items())
            link = _relative_url(os.path.relpath(row.run_dir, self.batch_dir)) + "/"
            status = row.status + (" (earlier run)" if row.reused else "")
            cells.append(
                "<tr>"
                f'<td><a href="{escape(link)}">{escape(row.name)}</a>'
                f'<br><small>{escape(display_label(row.source))}</small></td>'
                f'<td class="{escape(row.status)}">{escape(status)}</td>'
                f"<td>{before}</td><td>{after}</td>"
                f'<td class="num">{"" if row.psnr_db is None else f"{row.psnr_db:.1f}"}</td>'
                f'<td class="losses">{escape(losses)}'
                f'{"" if row.steps is None else f"<br>after {row.steps} steps"}</td>'
                f'<td class="num">{"" if row.seconds is None else f"{row.seconds:.1f}"}</td>'
                f'<td class="error">{escape(row.error or "")}</td>'
                "</tr>")
        details = "".join(f"<li>{escape(key)}: {escape(str(value))}</li>" for key, value in self.details.items())
        return f"""<!doctype html>
<html><head><meta charset="utf-8">{refresh}<title>{escape(self.title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{escape(self.title)}</h1>
<p><b>{escape(summary_line(self.rows))}</b>{"" if self.finished else " (running; this page reloads itself)"}</p>
<ul>{details}<li>updated: {time.strftime("%Y-%m-%d %H:%M:%S")}</li></ul>
<table>
<tr><th>clip</th><th>status</th><th>before</th><th>after</th><th>atlas PSNR (dB)</th><th>final losses</th>
<th>seconds</th><th>error</th></tr>
{chr(10).join(cells)}
</table>
</body></html>
"""
