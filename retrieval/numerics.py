"""Portable CPU numerics: every x86 machine computes with AVX2, so that rows depend on the CPU as little as can be.

PyTorch's CPU kernels (ATen's vectorised loops and oneDNN's convolutions) and faiss's distance
kernels each use the widest vector instructions the CPU offers: AVX2 on one machine, AVX-512 on
the next. The sums inside a step are then grouped differently, the last bits differ, and
training amplifies them. With the same code and packages, the quick regression config gave hmat
recall@1 59.82 on an AVX2 machine and 58.51 on an AVX-512 one. Held to AVX2, the AVX-512 machine
gave the AVX2 machine's rows bit for bit. A CPU of a later generation did not (same kernels, every row
within noise; docs/results.md): ``cpu_model()`` names the CPU in every run's record.

``pin_cpu_isa()`` runs when ``retrieval`` is imported. It sets, only where the user has not set
them already:

- ``ATEN_CPU_CAPABILITY=avx2`` (ATen's kernel dispatch),
- ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN),
- ``MKL_CBWR=AVX2`` (MKL's conditional numerical reproducibility),

and ``pin_faiss()`` sets faiss's dispatch level to AVX2 where faiss dispatches at run time.
Both are read when the libraries first run a kernel, so ``retrieval`` (or ``benchmarks``) must be
imported before torch computes anything; ``cpu_numerics()`` reports what is in force, and every
run records it. ``HMAT_CPU_ISA=native`` turns all of this off: faster on AVX-512 machines (about
14% on the quick retrieval config), but rows then match only machines with the same
instructions. CPUs without AVX2, other architectures and GPU kernels are left as they are.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

SWITCH = "HMAT_CPU_ISA"
CHOICES = ("avx2", "native")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def choice(environ=None) -> str:
    """The value of ``HMAT_CPU_ISA`` (default ``avx2``), checked."""
    env = os.environ if environ is None else environ
    value = env.get(SWITCH, "avx2").strip().lower() or "avx2"
    if value not in CHOICES:
        raise ValueError(f"{SWITCH}={env.get(SWITCH)!r}: expected one of {', '.join(CHOICES)} "
                         f"(avx2: the same numbers on every x86 CPU; native: the CPU's widest instructions)")
    return value


def _cpuinfo() -> str | None:
    """The text of /proc/cpuinfo, or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def has_avx2(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether this is an x86-64 CPU that reports AVX2 (read from /proc/cpuinfo; False where absent)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return False
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    if cpuinfo is None:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "avx2" in line.split(":", 1)[-1].split()
    return False


def portable(environ=None) -> bool:
    """Whether runs here are held to AVX2: chosen (the default) and possible on this CPU."""
    try:
        return choice(environ) == "avx2" and has_avx2()
    except ValueError:
        return False


def pin_cpu_isa(environ=None) -> dict:
    """Set the portable variables that are not set yet; returns those it set ({} when off)."""
    env = os.environ if environ is None else environ
    if not portable(env):
        return {}
    added = {key: value for key, value in PORTABLE_ENV.items() if key not in env}
    env.update(added)
    return added


def pin_faiss(faiss_module) -> None:
    """Hold a faiss that dispatches at run time to its AVX2 kernels (no-op for other builds)."""
    config = getattr(faiss_module, "SIMDConfig", None)
    level = getattr(faiss_module, "SIMDLevel_AVX2", None)
    if not portable() or config is None or level is None:
        return
    try:
        if config.has_dynamic_dispatch() and config.is_simd_level_available(level):
            config.set_level(level)
    except (AttributeError, RuntimeError):
        pass


def cpu_model(cpuinfo: str | None = None, cache_root: str = "/sys/devices/system/cpu/cpu0/cache") -> str:
    """The CPU a run computed on, as ``/proc/cpuinfo`` and sysfs name it: model name, family and model
    numbers, and the L2 and L3 cache sizes, e.g. ``Intel(R) Xeon(R) Processor (family 6 model 167; L2 2048K,
    L3 491520K)``; '' where unknown. Held to AVX2, CPUs of other generations have given the same rows, but
    not always (docs/results.md): recorded so that a row that does not reproduce can be traced to it."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    if cpuinfo is None:
        return ""
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "")
    if not name:
        return ""
    caches = []
    for index in sorted(Path(cache_root).glob("index*")) if Path(cache_root).is_dir() else []:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if level in ("2", "3") and kind in ("Unified", "Data"):
            caches.append(f"L{level} {size}")
    numbers = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    return f"{name} ({'; '.join([numbers, ', '.join(caches)] if caches else [numbers])})"


def cpu_numerics() -> str:
    """What torch's CPU kernels use and why, e.g. ``AVX2 (portable)`` or ``AVX512 (native)``."""
    import torch  # not at the top: this module sets the CPU variables before torch is first imported

    return f"{torch.backends.cpu.get_cpu_capability()} ({'portable' if portable() else 'native'})"
