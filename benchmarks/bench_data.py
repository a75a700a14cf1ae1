"""Benchmark: images/s of the CUB training pipeline against torchvision's ImageFolder.

Generated CUB-200-2011 JPEGs (about 500x375, ``benchmarks.make_recipe_data.write_cub``) in a
temporary folder; the training pipeline (decode, resize 256, random crop 224, flip,
normalise: ``photo_transform("fit")``) read through

- ``project``: ``build_dataset("cub200", root, "fit")`` through the trainer's loader
  (``make_train_loader``: persistent workers forked once, epoch-seeded batches of
  ``--batch`` images, ``m_per_class`` 5), built once and iterated every epoch, as ``train``
  does; JPEGs reach the v2 transform as uint8 tensors (``ImageFileDataset.tensor_jpeg``);
- ``project (PIL resize)``: the same with PIL images handed to the transform (the previous
  hand-over);
- ``project (forkserver)``: the same loader with forkserver workers instead of fork;
- ``previous loader``: the loader as it was: rebuilt every epoch, its workers started with
  spawn (as in a job process), PIL images to the transform;
- ``ImageFolder``: ``torchvision.datasets.ImageFolder`` on the same files with the same
  transform, ``DataLoader(shuffle=True, drop_last=True)``, the platform's default start
  method, a new iterator (new workers) each epoch: the reference.

Each loader runs ``--warmup`` epochs, then ``--epochs`` timed epochs (worker start-up
included, so a loader that restarts its workers every epoch pays for it); the rates are
images/s over the timed epochs, the best of ``--repeat`` rounds (within a round the loaders
take turns epoch by epoch), and the workers' CPU time per image (user + system, the least over the rounds: what a
shared machine disturbs least). The workers' memory is read while they run (psutil: RSS, and USS, the memory
unique to the process: a forked worker shares its parent's pages until it writes them).
Also timed in one process: per-image decode + transform with PIL images, with PIL-decoded
tensors (what ``project`` does) and with ``torchvision.io.decode_jpeg``, and how far the
tensor resize is from PIL's (uint8 levels). Target: ``project`` >= 1.0x ImageFolder.

    python -m benchmarks.bench_data [--classes 32] [--per-class 20] [--batch 125] [--workers 2]
                                    [--warmup 1] [--epochs 3] [--repeat 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from benchmarks.make_recipe_data import write_cub
from retrieval.data import build_dataset
from retrieval.data.base import open_rgb, pil_to_uint8
from retrieval.data.transforms import photo_transform
from retrieval.engine import TrainConfig, loaders, make_train_loader

TARGET = 1.0
VARIANTS = ("project", "project (PIL resize)", "project (forkserver)", "previous loader", "ImageFolder")


# --------------------------------------------------------------------------- data

def write_images(root, classes: int, per_class: int, sizes=None) -> Path:
    """CUB-format JPEGs under ``root`` (``classes`` classes in each official half); returns the
    ``CUB_200_2011`` folder."""
    return write_cub(root, classes=classes, per_class=per_class, sizes=sizes)


def project_dataset(base, tensor_jpeg: bool = True):
    dataset = build_dataset("cub200", base, "fit")
    dataset.tensor_jpeg = tensor_jpeg
    return dataset


def imagefolder_dataset(base, paths):
    """ImageFolder over ``base/images`` restricted to ``paths`` (the project's fit split), with
    the project's training transform."""
    folder = ImageFolder(str(Path(base) / "images"), transform=photo_transform("fit"))
    wanted = {os.path.realpath(p) for p in paths}
    keep = [i for i, (p, _) in enumerate(folder.samples) if os.path.realpath(p) in wanted]
    if len(keep) != len(wanted):
        raise RuntimeError(f"ImageFolder found {len(keep)} of the {len(wanted)} fit images")
    return Subset(folder, keep)


# --------------------------------------------------------------------------- loaders

def _train_cfg(batch: int, workers: int):
    return TrainConfig(batch_size=batch, m_per_class=5, num_workers=workers, progress=False)


def project_loaders(dataset, batch: int, workers: int, context: str | None = None):
    """``epoch -> loader``: the trainer's loader, built once (``context``: another start method)."""
    if context is None:
        loader = make_train_loader(dataset, _train_cfg(batch, workers))
    else:
        original = loaders.worker_context
        loaders.worker_context = lambda: torch.multiprocessing.get_context(context)
        try:
            loader = make_train_loader(dataset, _train_cfg(batch, workers))
        finally:
            loaders.worker_context = original
    return lambda epoch: loader, lambda: loaders.close_loader(loader)


def previous_loaders(dataset, batch: int, workers: int):
    """``epoch -> loader``: the loader as it was, rebuilt each epoch with spawn workers."""
    def build(epoch):
        sampler = MPerClassSampler(dataset.labels, m=5, batch_size=batch, length_before_new_iter=len(dataset))
        return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers,
                          multiprocessing_context="spawn")
    return build, lambda: None


def imagefolder_loaders(dataset, batch: int, workers: int):
    """``epoch -> loader``: ImageFolder's DataLoader with its defaults (new workers each epoch)."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers)
    return lambda epoch: loader, lambda: None


# --------------------------------------------------------------------------- measurement

def worker_memory(pids) -> dict:
    """Mean and max RSS and USS (MB) of the processes ``pids``."""
    rss, uss = [], []
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss.append(info.rss / 2**20)
        uss.append(info.uss / 2**20)
    if not rss:
        return {}
    return {"rss_mb": float(np.mean(rss)), "rss_mb_max": float(np.max(rss)), "uss_mb": float(np.mean(uss)),
            "workers": len(rss)}


class Meter:
    """Epochs of ``loader_for_epoch(epoch)``, one at a time (so several loaders can take turns):
    images/s over the timed epochs (from each epoch's ``iter()``, so worker start-up counts), the
    workers' CPU time per image, their memory after the first batch of each timed epoch (the
    largest) and the worker pids seen."""

    def __init__(self, loader_for_epoch):
        self.loader_for_epoch, self.epochs_run = loader_for_epoch, 0
        self.images, self.seconds, self.cpu, self.memory, self.pids = 0, 0.0, 0.0, {}, []

    def epoch(self, timed: bool = True) -> None:
        start = time.perf_counter()
        iterator = iter(self.loader_for_epoch(self.epochs_run))
        self.epochs_run += 1
        workers = [w.pid for w in getattr(iterator, "_workers", [])]
        cpu_start = worker_cpu(workers)
        count, cpu_end = 0, cpu_start
        for b, batch in enumerate(iterator):
            image = batch["image"] if isinstance(batch, dict) else batch[0]
            count += int(image.shape[0])
            if timed:
                cpu_end = worker_cpu(workers)  # read while they live (ImageFolder's end with the epoch)
            if b == 0 and timed:
                self.pids.append(workers)
                seen = worker_memory(workers)
                if seen.get("rss_mb", 0) >= self.memory.get("rss_mb", 0):
                    self.memory = seen
        elapsed = time.perf_counter() - start
        del iterator
        if timed:
            self.images += count
            self.seconds += elapsed
            self.cpu += cpu_end - cpu_start

    def result(self) -> dict:
        return {"images": self.images, "seconds": self.seconds,
                "images_per_s": self.images / self.seconds if self.seconds else 0.0,
                "worker_cpu_ms_per_image": 1000 * self.cpu / self.images if self.images else 0.0,
                "worker_pids": self.pids, **self.memory}


def measure(loader_for_epoch, warmup: int, epochs: int) -> dict:
    """``warmup`` untimed then ``epochs`` timed epochs of one loader (see ``Meter``)."""
    meter = Meter(loader_for_epoch)
    for e in range(warmup + epochs):
        meter.epoch(timed=e >= warmup)
    return meter.result()


def worker_cpu(pids) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids``."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


def per_image_timings(paths, repeat: int = 2) -> dict:
    """ms per image, in this process (1 thread), of decode + training transform: PIL image to the
    transform; PIL-decoded uint8 tensor to it (the project's hand-over); torchvision.io.decode_jpeg
    to it; and the decodes alone. Also how far decode_jpeg is from PIL's decode, and the tensor
    resize from PIL's (uint8 levels, over all pixels of these images)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its image decoders
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        def tv_decode(p):
            return decode_jpeg(read_file(str(p)), mode=ImageReadMode.RGB)

        transform = photo_transform("fit")
        ways = {"pil_image": lambda p: transform(open_rgb(p)),
                "pil_tensor": lambda p: transform(pil_to_uint8(open_rgb(p))),
                "decode_jpeg_tensor": lambda p: transform(tv_decode(p)),
                "pil_decode_only": lambda p: open_rgb(p),
                "decode_jpeg_only": tv_decode}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            best = {k: float("inf") for k in ways}
            for _ in range(repeat):
                for name, way in ways.items():
                    start = time.perf_counter()
                    for p in paths:
                        way(p)
                    best[name] = min(best[name], (time.perf_counter() - start) / len(paths) * 1000)
            resize = v2.Resize((256, 256))
            decode_diff, resize_diff, differing, total = 0, 0, 0, 0
            for p in paths:
                pil = open_rgb(p)
                decode_diff = max(decode_diff, int((pil_to_uint8(pil).int() - tv_decode(p).int()).abs().max()))
                a = pil_to_uint8(resize(pil)).int()
                b = resize(pil_to_uint8(pil)).int()
                d = (a - b).abs()
                resize_diff = max(resize_diff, int(d.max()))
                differing += int((d > 0).sum())
                total += d.numel()
        finally:
            torch.set_num_threads(threads)
    return {"ms_per_image": best, "decode_jpeg_vs_pil_max_levels": decode_diff,
            "tensor_vs_pil_resize_max_levels": resize_diff,
            "tensor_vs_pil_resize_share_differing": differing / max(1, total), "images": len(paths)}


def build_variant(name: str, base, batch: int, workers: int):
    """``(epoch -> loader, close)`` of the named variant."""
    if name == "project":
        return project_loaders(project_dataset(base), batch, workers)
    if name == "project (PIL resize)":
        return project_loaders(project_dataset(base, tensor_jpeg=False), batch, workers)
    if name == "project (forkserver)":
        return project_loaders(project_dataset(base), batch, workers, context="forkserver")
    if name == "previous loader":
        return previous_loaders(project_dataset(base, tensor_jpeg=False), batch, workers)
    if name == "ImageFolder":
        return imagefolder_loaders(imagefolder_dataset(base, project_dataset(base).paths), batch, workers)
    raise ValueError(f"unknown variant {name!r}; expected one of {list(VARIANTS)}")


def run(base, variants=VARIANTS, batch: int = 125, workers: int = 2, warmup: int = 1, epochs: int = 3,
        repeat: int = 2, timing_images: int = 40) -> dict:
    """Each round builds every variant's loader, runs their warm-up epochs, then their timed epochs
    taking turns (epoch e of every loader, in an order rotated at each epoch), so that a shared
    machine's load changes weigh on all of them alike."""
    rounds = {v: [] for v in variants}
    for _ in range(repeat):
        built = {name: build_variant(name, base, batch, workers) for name in variants}
        try:
            meters = {name: Meter(loader_for_epoch) for name, (loader_for_epoch, _) in built.items()}
            for _ in range(warmup):
                for meter in meters.values():
                    meter.epoch(timed=False)
            for e in range(epochs):
                order = list(variants)[e % len(variants):] + list(variants)[:e % len(variants)]
                for name in order:
                    meters[name].epoch()
            for name, meter in meters.items():
                rounds[name].append(meter.result())
        finally:
            for _, close in built.values():
                close()
    results = {}
    for name, runs in rounds.items():
        best = max(runs, key=lambda r: r["images_per_s"])
        results[name] = {**{k: v for k, v in best.items() if k != "worker_pids"},
                         "images_per_s_rounds": [r["images_per_s"] for r in runs],
                         "worker_cpu_ms_per_image_min": min(r["worker_cpu_ms_per_image"] for r in runs),
                         "workers_restarted_each_epoch": len({tuple(p) for p in best["worker_pids"]}) > 1}
    paths = project_dataset(base).paths[:timing_images]
    out = {"loaders": results, "per_image": per_image_timings(paths)}
    if "project" in results and "ImageFolder" in results:
        ratio = results["project"]["images_per_s"] / results["ImageFolder"]["images_per_s"]
        out["ratio_vs_imagefolder"] = ratio
        out["cpu_ratio_vs_imagefolder"] = (results["ImageFolder"]["worker_cpu_ms_per_image_min"]
                                           / results["project"]["worker_cpu_ms_per_image_min"])
        out["pass"] = bool(ratio >= TARGET)
    return out


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": __import__("torchvision").__version__,
            "pillow": __import__("PIL").__version__, "default_start_method": torch.multiprocessing.get_start_method()}


def table(out: dict) -> str:
    lines = ["| loader | images/s (best) | rounds | worker CPU ms/image (least) | worker RSS MB | worker USS MB "
             "| workers restarted each epoch |", "|---|---|---|---|---|---|---|"]
    for name, r in out["loaders"].items():
        rounds = ", ".join(f"{v:.0f}" for v in r["images_per_s_rounds"])
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {rounds} | {r['worker_cpu_ms_per_image_min']:.2f} | "
                     f"{r.get('rss_mb', float('nan')):.0f} | "
                     f"{r.get('uss_mb', float('nan')):.0f} | {'yes' if r['workers_restarted_each_epoch'] else 'no'} |")
    per = out["per_image"]
    lines += ["", "| decode + training transform, 1 process | ms per image |", "|---|---|"]
    for name, ms in per["ms_per_image"].items():
        lines.append(f"| {name} | {ms:.2f} |")
    lines += ["", f"decode_jpeg vs PIL decode: max {per['decode_jpeg_vs_pil_max_levels']} levels; tensor vs PIL "
                  f"resize to 256x256: max {per['tensor_vs_pil_resize_max_levels']} levels, "
                  f"{100 * per['tensor_vs_pil_resize_share_differing']:.2f}% of values differ"]
    if "ratio_vs_imagefolder" in out:
        lines.append(f"project / ImageFolder: {out['ratio_vs_imagefolder']:.2f}x (target >= {TARGET:.1f}x): "
                     f"{'PASS' if out['pass'] else 'FAIL'}; images per worker CPU second: "
                     f"{out['cpu_ratio_vs_imagefolder']:.2f}x ImageFolder's")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=32, help="classes in each official half (fit: 26 at 32)")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--batch", type=int, default=125, help="images per batch (m_per_class 5)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (the best counts)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        start = time.perf_counter()
        base = write_images(tmp, args.classes, args.per_class)
        written = time.perf_counter() - start
        out = run(base, variants, args.batch, args.workers, args.warmup, args.epochs, args.repeat)
        out["data"] = {"classes_per_half": args.classes, "per_class": args.per_class,
                       "fit_images": len(project_dataset(base).paths), "jpegs": 2 * args.classes * args.per_class,
                       "write_seconds": written}
    out["settings"] = {"batch": args.batch, "m_per_class": 5, "workers": args.workers, "warmup": args.warmup,
                       "epochs": args.epochs, "repeat": args.repeat}
    out["machine"] = machine()
    out["command"] = "python -m benchmarks.bench_data " + " ".join(argv if argv is not None else sys.argv[1:])
    print(table(out))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out.get("pass", True) else 1


if __name__ == "__main__":
    sys.exit(main())
