"""Benchmark: memory and time of the position-attention term against AT and the plain version.

At ResNet stage-1 shapes (student 64 x 56 x 56, teacher 256 x 56 x 56, batch 32, fp32),
forward plus backward of the loss alone, each figure in its own process:

- ``at``: activation attention (the cheap reference for memory);
- ``plain``: position attention materialising every N x N matrix (N = 3136);
- ``blocked``: ``position_attention_loss`` (row blocks, gradient formed in the same pass).

Extra peak memory = peak resident memory during the step minus that before it (inputs
allocated). Targets: blocked extra memory <= 2 x AT's; blocked time <= 0.5 x plain's.
The blocked term's arithmetic is O(B·N²·C); the script also times bare batched
matmuls of the same shapes and reports which share of that matmul bound it reaches.

    python -m benchmarks.bench_position_attention [--batch 32] [--size 56] [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from retrieval.methods.losses import activation_attention_loss, position_attention_loss, position_attention_loss_plain
from retrieval.methods.losses.position_attention import DEFAULT_BLOCK_ELEMENTS, block_rows


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(kind: str, batch: int, size: int, cs: int, ct: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fs = torch.randn(batch, cs, size, size, requires_grad=True)
    ft = torch.randn(batch, ct, size, size)
    n = size * size
    if kind == "matmul":  # the O(B·N²·C) arithmetic of the blocked term, as bare bmm calls

        qs, qt = fs.detach().flatten(2), ft.flatten(2)
        rows = block_rows(batch, n, DEFAULT_BLOCK_ELEMENTS)  # the blocks the loss itself uses
        start = time.perf_counter()
        for r0 in range(0, n, rows):
            qs[:, :, r0:r0 + rows].transpose(1, 2) @ qs
            qt[:, :, r0:r0 + rows].transpose(1, 2) @ qt
            g = torch.empty(batch, min(rows, n - r0), n)
            qs @ g.transpose(1, 2)
            qs[:, :, r0:r0 + rows] @ g
        return {"kind": kind, "seconds": time.perf_counter() - start}
    loss_fn = {"at": activation_attention_loss,
               "plain": lambda a, b: position_attention_loss_plain(a, b, 0.1),
               "blocked": lambda a, b: position_attention_loss(a, b, 0.1)}[kind]
    small = torch.randn(2, cs, 8, 8, requires_grad=True)
    loss_fn(small, torch.randn(2, ct, 8, 8)).backward()  # warm-up: load the kernels before measuring
    fn = lambda: loss_fn(fs, ft)  # noqa: E731
    before = _peak_mb()
    start = time.perf_counter()
    loss = fn()
    loss.backward()
    seconds = time.perf_counter() - start
    return {"kind": kind, "seconds": seconds, "extra_peak_mb": _peak_mb() - before, "loss": float(loss)}


def measure(kind: str, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_position_attention", "--child", kind, "--batch",
           str(args.batch), "--size", str(args.size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--student-channels", type=int, default=64)
    p.add_argument("--teacher-channels", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-plain", action="store_true", help="skip the plain version (needs ~8 GB at 56x56)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.size, args.student_channels, args.teacher_channels,
                               args.threads)))
        return 0
    kinds = ["at", "blocked", "matmul"] + ([] if args.skip_plain else ["plain"])
    res = {k: measure(k, args) for k in kinds}
    n = args.size ** 2
    print(f"shapes: student {args.student_channels}x{args.size}x{args.size}, teacher "
          f"{args.teacher_channels}x{args.size}x{args.size}, batch {args.batch}, N = {n}, threads {args.threads}")
    for k in ("at", "blocked", "plain"):
        if k in res:
            print(f"{k:>8}: {res[k]['seconds']:7.2f} s   extra peak memory {res[k]['extra_peak_mb']:8.0f} MB   "
                  f"loss {res[k]['loss']:.6f}")
    ok = {"memory": res["blocked"]["extra_peak_mb"] <= 2 * max(res["at"]["extra_peak_mb"], 1.0)}
    print(f"blocked memory / AT memory: {res['blocked']['extra_peak_mb'] / max(res['at']['extra_peak_mb'], 1.0):.2f} "
          f"(target <= 2): {'PASS' if ok['memory'] else 'FAIL'}")
    if "plain" in res:
        ok["time"] = res["blocked"]["seconds"] <= 0.5 * res["plain"]["seconds"]
        print(f"blocked time / plain time: {res['blocked']['seconds'] / res['plain']['seconds']:.2f} "
              f"(target <= 0.5): {'PASS' if ok['time'] else 'FAIL'}")
    flops = 2 * args.batch * n * n * (3 * args.student_channels + args.teacher_channels)
    print(f"O(B·N²·C) bound: its matmuls are {flops / 1e9:.0f} GFLOP; alone (same blocks, no softmax) they take "
          f"{res['matmul']['seconds']:.2f} s ({flops / 1e9 / res['matmul']['seconds']:.0f} GFLOP/s); the blocked term "
          f"takes {res['blocked']['seconds'] / res['matmul']['seconds']:.2f}x that")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": res, "pass": ok}, f, indent=2)
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
