"""Progress of long work: a tqdm bar with the live metrics where a person watches; run by the
pipeline (output to a log file), JSON events appended to the file RLHF_LITE_PROGRESS names, which
the pipeline's `Follower` draws as one bar per step on the console."""

import json
import os
import shutil
import sys
from contextlib import AbstractContextManager

from tqdm.auto import tqdm

ENV = "RLHF_LITE_PROGRESS"


class Progress(AbstractContextManager):
    """A tqdm bar, or its events when RLHF_LITE_PROGRESS names a file (the pipeline's)."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, disable: bool = False, leave: bool = True):
        self.path = None if disable else os.environ.get(ENV)
        self.desc, self.total, self.n, self.postfix = desc, total, initial, {}
        self.bar = None
        if self.path is None:
            self.bar = tqdm(total=total, initial=initial, desc=desc, disable=disable, leave=leave, dynamic_ncols=True)
        self._emit()

    def _emit(self, **extra) -> None:
        if self.path is not None:
            event = {"desc": self.desc, "total": self.total, "n": self.n, "postfix": self.postfix, **extra}
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event) + "\n")

    def update(self, n: int = 1, **metrics) -> None:
        """Advance by `n` and show `metrics` (name -> number or text) beside the bar."""
        self.n += n
        self.postfix.update({k: f"{v:.3g}" if isinstance(v, float) else str(v) for k, v in metrics.items()})
        if self.bar is not None:
            if metrics:
                self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(n)
        elif metrics:  # the log file keeps what the parent's bar shows
            shown = ", ".join(f"{k} {v}" for k, v in self.postfix.items())
            print(f"{self.desc} {self.n}/{self.total}: {shown}", flush=True)
        self._emit()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self._emit(closed=True)

    def __exit__(self, *exc) -> None:
        self.close()


def write(text: str, file=None) -> None:
    """A line for a person (on stdout unless `file`), printed without breaking a bar being drawn."""
    tqdm.write(text, file=file)


class Follower:
    """The parent's side: draws the events a child appends to `path` as one bar named `name` on a
    terminal; off a terminal it draws nothing and `close` tells the final state."""

    def __init__(self, path: str, name: str):
        self.path, self.name, self.offset, self.last = path, name, 0, None
        self.live = sys.stderr.isatty()
        # the terminal's width once (a terminal that reports none, such as `script`'s, gets 80)
        self.bar = tqdm(
            total=None,
            desc=name,
            file=sys.stderr,
            ncols=shutil.get_terminal_size().columns,
            disable=not self.live,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        lines = chunk.split("\n")
        self.offset += len(chunk.encode("utf-8")) - len(lines[-1].encode("utf-8"))  # keep a partial line
        for line in lines[:-1]:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.last = event
            desc = self.name if event["desc"] == self.name else f"{self.name}: {event['desc']}"
            self.bar.set_description_str(desc, refresh=False)
            self.bar.total, self.bar.n = event.get("total"), event.get("n", 0)
            self.bar.set_postfix(event.get("postfix") or {}, refresh=False)
            self.bar.refresh()

    def close(self) -> str:
        """Close the bar; returns a one-line account of the last state (n/total, metrics)."""
        self.poll()
        self.bar.close()
        event = self.last or {}
        done = f"{event.get('n', 0)}/{event['total']}" if event.get("total") else ""
        metrics = ", ".join(f"{k} {v}" for k, v in (event.get("postfix") or {}).items())
        return "  ".join(x for x in (done, metrics) if x)
