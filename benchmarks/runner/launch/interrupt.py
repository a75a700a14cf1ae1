"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM (what SLURM, Kubernetes and most schedulers send on
preemption or at a time limit): every job ends within seconds, one line says what stopped and how to
resume, and the command exits with 128 + the signal (130 for SIGINT, 143 for SIGTERM).

``reports_interrupts(prog)`` wraps a command's ``main``: within it (``handling_signals``) both signals
raise ``Interrupted``, a ``KeyboardInterrupt``, in the main thread, once: a second signal while the run
stops is ignored, so that the stopping itself is not cut short. The exception unwinds the run as Ctrl-C
always did: the launcher's pool stops every job on its way out (``benchmarks.runner.launch``: the local
pool SIGKILLs each job process's group, its DataLoader workers included; the ray pool cancels its
tasks with force and shuts down a Ray instance it started; the slurm pool cancels its SLURM jobs), a
job running in this process closes its loader workers, and a file being written is left whole or not
at all (atomic writes). ``run_jobs`` and ``run_suite`` ``note`` on the exception what was running, how
many jobs had finished, how the pool stopped the rest and where the rows are; the wrapper prints that
as one line with the command to rerun. Finished jobs stay (rows in runs.csv, networks in the cache),
and each stopped training continues from its last finished epoch when the command is rerun.

A library (Ray's ``ray.init``) may set its own SIGTERM handler; ``reinstall()`` puts this one back.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_active = False
_received: int | None = None  # the signal that started the stopping (a library may turn it into a plain
                              # KeyboardInterrupt: Ray re-raises one when a signal ends its wait)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the main process (``signum``); ``notes`` say what it stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise(signum, frame):
    global _received
    _received = int(signum)
    for sig in SIGNALS:  # once: a second Ctrl-C must not cut the stopping of the jobs short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def reinstall() -> None:
    """Put this module's handlers back (after a library replaced them) while ``handling_signals`` is on."""
    if _active and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # not once the run is stopping
                signal.signal(sig, _raise)


@contextlib.contextmanager
def handling_signals():
    """Within the block (main thread only), SIGINT and SIGTERM raise ``Interrupted``."""
    global _active, _received
    if threading.current_thread() is not threading.main_thread() or _active:
        yield
        return
    _received = None
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, _raise)
    _active = True
    try:
        yield
    finally:
        _active, _received = False, None
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def note(exc: BaseException, **facts) -> None:
    """Add ``facts`` (done, total, stopped, how, rows) to an interrupt on its way out; the innermost wins."""
    notes = exc.__dict__.setdefault("notes", {})
    for key, value in facts.items():
        notes.setdefault(key, value)


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt: its own, else the one this module's handler received (while
    ``handling_signals`` is on), else SIGINT (a plain KeyboardInterrupt is Ctrl-C)."""
    return int(getattr(exc, "signum", None) or _received or signal.SIGINT)


def exit_code(exc: BaseException) -> int:
    """128 + the signal: 130 for SIGINT (and a plain KeyboardInterrupt), 143 for SIGTERM."""
    return 128 + signal_of(exc)


def _jobs(names) -> str:
    names = [f"'{n}'" for n in names]
    return ", ".join(names) if len(names) <= 6 else ", ".join(names[:6]) + f" and {len(names) - 6} more"


def describe(exc: BaseException, command: str) -> str:
    """The one line printed for an interrupt: what was stopped, what was kept, how to resume."""
    signum = signal_of(exc)
    notes = getattr(exc, "notes", {}) or {}
    parts = [f"interrupted by {signal.Signals(signum).name}" + (" (Ctrl-C)" if signum == signal.SIGINT else "")]
    if "total" in notes:
        running = notes.get("stopped") or []
        parts.append(f"{notes.get('done', 0)} of {notes['total']} jobs had finished"
                     + (f", {_jobs(running)} stopped" if running else ""))
    else:  # before the jobs (preflight, data), or a loop of its own (the Optuna search)
        parts.append("every job it had started was stopped")
    if notes.get("how"):
        parts.append(notes["how"])
    kept = "finished jobs are kept" + (f" (rows in {notes['rows']})" if notes.get("rows") else "")
    parts.append(f"{kept}; rerun the same command to resume, each stopped training from its last finished "
                 f"epoch: {command}")
    return "; ".join(parts)


def reports_interrupts(prog: str):
    """Decorate a command's ``main(argv=None) -> int`` (see the module docstring); ``prog`` is how the
    command is started (``python -m benchmarks.run``), for the line that says how to resume."""

    def decorate(main):
        @functools.wraps(main)
        def wrapped(argv=None):
            args = sys.argv[1:] if argv is None else list(argv)
            with handling_signals():
                try:
                    return main(argv)
                except KeyboardInterrupt as exc:
                    command = " ".join([prog, *(shlex.quote(a) for a in args)])
                    print(f"{prog}: {describe(exc, command)}", file=sys.stderr, flush=True)
                    return exit_code(exc)

        return wrapped

    return decorate
