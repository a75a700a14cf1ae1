"""GPU benchmark of the CUB recipe: training speed and memory, and exact faiss search on GPU vs CPU.

    python -m benchmarks.bench_gpu [--steps 20] [--batch B] [--json OUT]

On a machine with a CUDA GPU it

1. writes a CUB-200-2011 tree of generated full-size JPEGs (about 500x375,
   ``benchmarks.make_recipe_data.write_cub``) and builds the recipe's data
   (``benchmarks/configs/cub200.yaml``: resize 256, crop 224, flip);
2. for the teacher (ResNet-50) and each student of the recipe's run list (ResNet-18, each KD
   method with the recipe's options), with AMP off/on and channels_last off/on, runs ``--steps``
   training steps (after 3 warm-up steps) on one batch drawn by the recipe's sampler and held on
   the GPU, so the loader does not limit the rate: images/s and peak GPU memory
   (``torch.cuda.max_memory_allocated``). Weights are random (speed does not depend on them);
3. computes exact Recall@{1,10,100,1000} with ``retrieval.metrics.evaluate`` on SOP-size
   embeddings (60,502 x 128, 11,316 classes) with faiss on the GPU and on the CPU: time of each
   and the largest difference between their metrics (faiss-cpu builds have no GPU index: then
   only the CPU side is measured, and the table says so).

Without a CUDA GPU it says so and exits 0 (``--allow-cpu`` runs it on the CPU anyway, slowly).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import run
from benchmarks.bench_eval import make_data
from benchmarks.make_recipe_data import write_cub
from benchmarks.runner.results_io import atomic_write_json, atomic_write_via
from benchmarks.runner.schema import typed
from benchmarks.runner.suite_runner import seed_init
from benchmarks.runner.tasks import retrieval as suite
from benchmarks.runner.tasks.common import train_options
from benchmarks.runner.tasks.retrieval import prepare
from retrieval.engine.mixed_precision import MixedPrecision
from retrieval.engine.trainer import make_optimizer, make_train_loader
from retrieval.methods import build_method
from retrieval.metric_losses import build_task_loss
from retrieval.metrics import evaluate
from retrieval.metrics.knn import cpu_search, gpu_available

COMBOS = [(False, False), (True, False), (False, True), (True, True)]  # (amp, channels_last)
WARMUP = 3
SOP_N, SOP_DIM, SOP_KS = 60502, 128, (1, 10, 100, 1000)


def recipe_config(data_root: Path, device: str, batch: int | None = None) -> dict:
    """The CUB recipe as the runner builds it, on ``data_root``, with random initial weights."""
    argv = ["--config", str(Path(__file__).parent / "configs" / "cub200.yaml"), "--data-root", str(data_root),
            "--device", device]
    cfg, _ = run.build_config(run.parse_args(argv))
    for role in ("teacher", "student"):
        cfg[role]["pretrained"] = False
    if batch:
        cfg["train"]["batch_size"] = batch
    return cfg


def one_batch(cfg: dict, data: dict) -> dict:
    """A training batch drawn by the recipe's sampler (``m_per_class`` images of each class)."""
    tcfg = train_options(cfg, "student", progress=False)
    tcfg.num_workers = 0
    return next(iter(make_train_loader(data["fit"], tcfg)))


def build_job(cfg: dict, data: dict, job: str, teacher=None):
    """The method object a job trains: the teacher (``none`` on the teacher network) or a student."""
    if job == "teacher":
        return build_method("none", student=suite._network(cfg, data, "teacher"),
                            task_loss=build_task_loss(**cfg["task_loss"]))
    return suite.build_student_method(cfg, data, teacher, job, cfg["methods"].get(job))


def measure(method, batch: dict, cfg: dict, role: str, device: str, amp: bool, channels_last: bool,
            steps: int) -> dict:
    """images/s over ``steps`` training steps on ``batch`` (after ``WARMUP``), and the peak GPU memory."""
    tcfg = train_options(cfg, role, progress=False)
    method.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    method.to(memory_format=fmt)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    batch["image"] = batch["image"].contiguous(memory_format=fmt)
    optimizer = make_optimizer(method.trainable_parameters(), tcfg)
    precision = MixedPrecision(amp, device)
    cuda = torch.device(device).type == "cuda"
    method.train()

    def step():
        with precision.autocast():
            _, losses = method.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        precision.backward_and_step(sum(losses.values()), optimizer)

    for _ in range(WARMUP):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    images = len(batch["image"]) * steps
    return {"images_per_s": images / seconds, "s_per_step": seconds / steps,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}


def training_table(cfg: dict, data: dict, device: str, steps: int, jobs=None, log=print) -> list[dict]:
    """One row per (job, amp, channels_last)."""
    batch = one_batch(cfg, data)
    seed_init(cfg, 0)
    teacher = build_job(cfg, data, "teacher").student.to(device).eval()
    rows = []
    for job in jobs or ["teacher", *typed(cfg).run]:
        for amp, channels_last in COMBOS:
            seed_init(cfg, 0)
            method = build_job(cfg, data, job, teacher)
            row = {"job": job, "amp": amp, "channels_last": channels_last, "batch": len(batch["image"]),
                   **measure(method, batch, cfg, "teacher" if job == "teacher" else "student", device, amp,
                             channels_last, steps)}
            rows.append(row)
            log(f"  {job:>8} amp={amp!s:5} channels_last={channels_last!s:5}: {row['images_per_s']:8.1f} images/s"
                + (f", peak {row['peak_gpu_mb'] / 1024:.2f} GB" if row["peak_gpu_mb"] is not None else ""))
            del method
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


def faiss_comparison(n: int = SOP_N, dim: int = SOP_DIM, ks=SOP_KS, seed: int = 0) -> dict:
    """Exact Recall@K of SOP-size embeddings searched by faiss on the GPU (when it can) and on the CPU."""
    x, labels = make_data(n, dim, seed)
    out = {"n": n, "dim": dim, "ks": list(ks), "faiss_gpu": gpu_available()}
    start = time.perf_counter()
    with cpu_search():
        cpu = evaluate(x, labels, ks=ks)
    out.update(cpu_seconds=time.perf_counter() - start, cpu=cpu)
    if out["faiss_gpu"]:
        start = time.perf_counter()
        gpu = evaluate(x, labels, ks=ks)
        out.update(gpu_seconds=time.perf_counter() - start, gpu=gpu,
                   max_abs_difference=max(abs(gpu[k] - cpu[k]) for k in cpu))
    return out


def markdown(device_name: str, rows: list[dict], search: dict, steps: int, command: str) -> str:
    lines = [f"# bench_gpu: the CUB recipe on {device_name}", "", f"Command: `{command}`", "",
             f"Training: {steps} steps (after {WARMUP} warm-up) on one batch held on the device; random weights; "
             f"generated 500x375 JPEGs, crop 224.", "",
             "| job | AMP | channels_last | batch | images/s | peak GPU memory (GB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        peak = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb'] / 1024:.2f}"
        lines.append(f"| {r['job']} | {'on' if r['amp'] else 'off'} | {'on' if r['channels_last'] else 'off'} | "
                     f"{r['batch']} | {r['images_per_s']:.1f} | {peak} |")
    lines += ["", f"Exact search, {search['n']:,} x {search['dim']} embeddings, Recall@{search['ks']}: "
                  f"CPU {search['cpu_seconds']:.1f} s"]
    if search["faiss_gpu"]:
        lines[-1] += (f", GPU {search['gpu_seconds']:.1f} s; largest metric difference GPU - CPU "
                      f"{search['max_abs_difference']:.2e}.")
    else:
        lines[-1] += "; this faiss has no GPU support (faiss-cpu), so the GPU search was not measured."
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="timed training steps per measurement (default 20)")
    p.add_argument("--batch", type=int, help="batch (default: the recipe's, 125)")
    p.add_argument("--classes", type=int, default=40, help="generated classes in each half of CUB (default 40)")
    p.add_argument("--jobs", help="comma-separated jobs (default: teacher and the recipe's run list)")
    p.add_argument("--search-n", type=int, default=SOP_N, help=f"embeddings searched (default {SOP_N})")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--md", help="also write the table to this markdown file")
    p.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU (slow)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("bench_gpu: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a machine with a GPU.")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = write_cub(tmp, classes=args.classes, per_class=5)
        cfg = recipe_config(root, device, args.batch)
        data = prepare(cfg, log=lambda *a: None)
        print(f"bench_gpu on {name}: CUB recipe, {len(data['fit'])} generated fit images")
        rows = training_table(cfg, data, device, args.steps, args.jobs.split(",") if args.jobs else None)
    search = faiss_comparison(n=args.search_n)
    command = "python -m benchmarks.bench_gpu " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(name, rows, search, args.steps, command.strip())
    print(text)
    result = {"device": name, "torch": torch.__version__, "steps": args.steps, "training": rows, "search": search,
              "command": command.strip()}

    if args.json:
        atomic_write_json(Path(args.json), result)
    if args.md:
        atomic_write_via(Path(args.md), lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
