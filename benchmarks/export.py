"""Ship a trained model: ``python -m benchmarks.export --run RUN_ID --format onnx``.

    python -m benchmarks.export --run RUN_ID --format onnx [--out results] [--cache-dir cache]
        [--dest FILE.onnx] [--index-folder DIR [--index-dest FILE.faiss]]

Finds ``runs/<RUN_ID>.json`` under ``--out`` (any suite and dataset, as ``--reproduce``
does), rebuilds the run's network from the saved config, loads its weights from
``--cache-dir`` (a student's selected checkpoint, or the cached teacher for a
``teacher-...`` row) and writes it to ONNX with ``torch.onnx.export`` (the
torch.export-based exporter, torch's default; ``--exporter torchscript`` for the legacy
one), with a dynamic batch axis. Retrieval runs export the embedding network (output:
the embedding), classification runs the classifier (output: logits), detection runs the
detector's backbone and FPN (outputs: the FPN levels, from images already normalised,
resized and padded by the detector's transform; the RPN and box heads stay in PyTorch).

The command then runs the ONNX file with onnxruntime on real images (the first
``--check-images`` of the run's test split, as one batch and one image alone) and
compares with PyTorch: every output must satisfy ``|onnx - torch| <= atol + rtol * |torch|``
(default atol 1e-4, rtol 1e-3). Otherwise it stops with exit status 1 and the largest
difference. ``<dest>.json`` (e.g. ``model.onnx.json``) records the run, the input size, the check and its result.

``--index-folder DIR`` (retrieval runs) embeds every image under DIR with the exported
model (one sub-folder per class, as the ``folder`` dataset reads, or a flat folder),
preprocessed like the run's test split, and writes a faiss index (``IndexFlatIP`` when the
network L2-normalises its embeddings, else ``IndexFlatL2``) to ``--index-dest`` (default:
``<dest>`` with ``.faiss``) and, beside it in ``<index-dest>.json``, the image paths in index order.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import torch
from PIL import Image
from torch import nn

from benchmarks.runner.errors import ArgumentParser, add_debug_flag, reports_user_errors
from benchmarks.runner.reproduce import find_run
from benchmarks.runner.results_io import atomic_write_json, atomic_write_via
from benchmarks.runner.suite_runner import student_checkpoint
from benchmarks.runner.tasks import (
    classification as classification_task,
    detection as detection_task,
    is_suite,
    retrieval as retrieval_task,
    suite_task,
    suites_of_task,
)
from benchmarks.runner.tasks.retrieval import _model  # the suite's own builder (output_stride included)
from retrieval.data import build_dataset
from retrieval.data.folder import IMAGE_EXTENSIONS
from retrieval.detection.data import build_detection_dataset
from retrieval.models import create_classifier
from retrieval.utils.cache_files import load_torch

ATOL, RTOL = 1e-4, 1e-3
RETRIEVAL_SUITES = tuple(suites_of_task("retrieval"))
FORMATS = ("onnx",)
KNOWN_SHOWN = 8


class ExportMismatch(SystemExit):
    """The exported model's outputs differ from PyTorch's beyond the tolerance (a failed check,
    not bad input: it keeps exit status 1)."""

    user_error = False


def locate_run(results: Path, run_id: str) -> Path:
    """``runs/<run_id>.json`` under ``results``; a clear error naming where it looked and some known ids."""
    try:
        return find_run(results, run_id)
    except SystemExit as exc:
        known = sorted(p.stem for p in results.glob("*/*/runs/*.json"))
        shown = ", ".join(known[:KNOWN_SHOWN]) + (f", ... ({len(known)} in all)" if len(known) > KNOWN_SHOWN else "")
        where = f"looked in {results}/<suite>/<dataset>/runs/<run_id>.json"
        raise SystemExit(f"{exc}\n{where}; known run ids there: {shown or 'none (no saved runs)'}") from None


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


STUDENT_PREFIX = {"detection": "kd.student."}  # where the student sits in a run's checkpoint (default "student.")
SUITES = sorted(RETRIEVAL_SUITES + ("classification", "detection"))


@dataclass
class Exportable:
    """What one run exports: ``net`` maps a batch (N, C, H, W) to ``output_names`` tensors;
    ``inputs(n)`` is the first ``n`` images of the run's test split, prepared as ``net`` reads them."""

    net: nn.Module
    inputs: Callable[[int], torch.Tensor]
    output: str
    output_names: list[str]
    weights: Path
    test: object
    preprocessing: str
    normalized: bool = False


def _weights(suite, cfg: dict, row: dict, cache_dir: Path) -> tuple[dict, Path]:
    """The run's network weights (state dict) and the file they came from."""
    if row["method"] == "teacher":
        path = suite.teacher_checkpoint(cfg, cache_dir, int(row["seed"]))
        loader = lambda blob: blob["state_dict"]  # noqa: E731
    else:
        path = student_checkpoint(cfg, cache_dir, row["run_id"])
        loader = lambda blob: _strip(blob, STUDENT_PREFIX.get(cfg["suite"], "student."))  # noqa: E731
    blob = load_torch(path, then="")  # None: absent, or damaged (then moved aside, with a line saying so)
    if blob is None:
        raise SystemExit(f"no weights for run {row['run_id']}: {path} does not exist or did not load. Checkpoints "
                         f"are kept in the --cache-dir of the run that trained them (default: cache); pass that "
                         f"folder with --cache-dir, or run python -m benchmarks.run with its config again (it "
                         f"writes them anew)")
    return loader(blob), path


def _suite(name: str | None, run_id: str):
    """The module of the task that ran suite ``name`` (its network builders)."""
    modules = {"retrieval": retrieval_task, "classification": classification_task, "detection": detection_task}
    if not is_suite(name) or suite_task(name) not in modules:
        raise SystemExit(f"run {run_id}: export of suite {name!r} is not supported; supported: {SUITES}")
    return modules[suite_task(name)]


def fresh_network(cfg: dict, role: str, num_classes: int | None = None):
    """The untrained network of ``role`` (``teacher`` or ``student``) of a saved run config: the embedding
    network of a retrieval suite, the classifier (``num_classes`` outputs) of the classification suite."""
    spec = cfg[role]
    if cfg.get("suite") in RETRIEVAL_SUITES:
        return _model({**spec, "pretrained": False})
    if cfg.get("suite") == "classification":
        return create_classifier(spec["arch"], num_classes, pretrained=False)
    raise SystemExit(f"no network builder for suite {cfg.get('suite')!r}; supported: "
                     f"{sorted(RETRIEVAL_SUITES + ('classification',))}")


def run_test_split(cfg: dict):
    """The test split of a saved run config's dataset, as the suite built it."""
    d = cfg["dataset"]
    return build_dataset(d["name"], d.get("root"), "test", **dict(d.get("options") or {}))


def first_images(dataset, n: int) -> torch.Tensor:
    """The first ``n`` images of ``dataset`` (as the model sees them) stacked into one batch."""
    n = min(n, len(dataset))
    if n < 1:
        raise SystemExit(f"the run's test split {dataset!r} is empty: nothing to check the export on")
    return torch.stack([dataset[i]["image"] for i in range(n)])


def build_network(saved: dict, cache_dir: Path) -> Exportable:
    """The run's network in eval mode with its trained weights, and its real test inputs."""
    cfg, row = saved["config"], saved["row"]
    suite = _suite(cfg.get("suite"), row["run_id"])
    role = "teacher" if row["method"] == "teacher" else "student"
    state, path = _weights(suite, cfg, row, cache_dir)
    if cfg["suite"] == "detection":
        return _detector_backbone(suite, cfg, role, state, path, cache_dir)
    if cfg["suite"] in RETRIEVAL_SUITES:
        net = fresh_network(cfg, role)
        output = "embedding (L2-normalised)" if cfg[role]["normalize"] else "embedding"
    else:
        if "fc.weight" not in state:
            raise SystemExit(f"the checkpoint {path} of {row['run_id']} holds no classifier head (fc.weight)")
        net = fresh_network(cfg, role, int(state["fc.weight"].shape[0]))
        output = "logits"
    net.load_state_dict(state)
    test = run_test_split(cfg)
    return Exportable(net.eval(), lambda n: first_images(test, n), output, ["output"], path, test,
                      f"the test split's transform: {test.transform!r}", bool(getattr(net, "normalize", False)))


class DetectorBackbone(nn.Module):
    """A detector's body + FPN: normalised, resized images (N, C, H, W) -> the FPN levels, as a tuple."""

    def __init__(self, detector):
        super().__init__()
        self.backbone = detector.detector.backbone

    def forward(self, x: torch.Tensor):
        return tuple(self.backbone(x).values())


def _detector_backbone(suite, cfg: dict, role: str, state: dict, path: Path, cache_dir: Path) -> Exportable:
    """The detection suite's export: the detector's backbone and FPN (the RPN and RoI heads, with their
    data-dependent proposals and NMS, stay in PyTorch). Inputs are test images after the detector's own
    transform (normalise, resize to min_size/max_size, pad to a multiple of 32)."""
    key = "detector.roi_heads.box_predictor.cls_score.weight"
    if key not in state:
        raise SystemExit(f"the checkpoint {path} holds no detector ({key} missing)")
    detector = suite._detector(cfg, role, int(state[key].shape[0]) - 1)  # the predictor adds the background
    detector.load_state_dict(state)
    detector.eval()
    d = cfg["dataset"]
    test = build_detection_dataset(d["name"], d.get("root"), "test", cache_dir=cache_dir,
                                   **dict(d.get("options") or {}))

    def inputs(n: int) -> torch.Tensor:
        images = [test[i]["image"] for i in range(min(n, len(test)))]
        if not images:
            raise SystemExit("the run's test split is empty: nothing to check the export on")
        with torch.no_grad():
            return detector.detector.transform(images)[0].tensors

    names = [level.name for level in detector.fpn_levels]
    return Exportable(DetectorBackbone(detector).eval(), inputs, f"FPN levels {', '.join(names)} of the backbone",
                      names, path, test, f"the detector's transform: {detector.detector.transform!r}")


def export_onnx(net, example: torch.Tensor, dest: Path, exporter: str = "dynamo",
                output_names: list[str] = ("output",)) -> None:
    """Write ``net`` to ``dest`` (atomically) with input ``input`` (N, C, H, W; N dynamic) and ``output_names``."""
    def write(tmp):
        names = {"input_names": ["input"], "output_names": list(output_names)}
        if exporter == "dynamo":
            torch.onnx.export(net, (example,), tmp, dynamo=True, verbose=False,
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, **names)
        else:
            torch.onnx.export(net, (example,), tmp, dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in ["input", *output_names]}, **names)
    atomic_write_via(dest, write)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _as_list(out) -> list[np.ndarray]:
    return [t.numpy() for t in out] if isinstance(out, (tuple, list)) else [out.numpy()]


def compare_outputs(net, path: Path, images: torch.Tensor, atol: float = ATOL, rtol: float = RTOL) -> dict:
    """Run ``images`` as one batch and the first image alone through PyTorch and onnxruntime.

    Returns ``{"max_abs_diff", "max_excess", "ok", ...}`` over every output; ``max_excess`` is the
    largest ``|onnx - torch| - (atol + rtol * |torch|)`` (``ok`` when it is <= 0 everywhere)."""
    session = _session(path)
    worst, excess = 0.0, -np.inf
    for batch in (images, images[:1]):
        with torch.no_grad():
            expected = _as_list(net(batch))
        got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
        if len(got) != len(expected):
            raise ExportMismatch(f"the ONNX model has {len(got)} outputs, PyTorch's {len(expected)}")
        for g, e in zip(got, expected):
            if g.shape != e.shape:
                raise ExportMismatch(f"ONNX output shape {g.shape} != PyTorch's {e.shape}")
            diff = np.abs(g - e)
            worst = max(worst, float(diff.max()))
            excess = max(excess, float((diff - (atol + rtol * np.abs(e))).max()))
    return {"images": int(len(images)), "batches": [int(len(images)), 1], "atol": atol, "rtol": rtol,
            "max_abs_diff": worst, "max_excess": excess, "ok": bool(excess <= 0)}


def export_run(run_id: str, results: Path, cache_dir: Path, dest: Path | None = None, exporter: str = "dynamo",
               check_images: int = 64, atol: float = ATOL, rtol: float = RTOL, log=print) -> dict:
    """Export one run to ONNX and check it; returns the record written to ``<dest>.json`` (plus, not
    written, ``exportable`` and ``path``). Raises ``ExportMismatch`` (exit status 1) when the check fails."""
    path = locate_run(results, run_id)
    saved = json.loads(path.read_text())
    cfg, row = saved["config"], saved["row"]
    ex = build_network(saved, cache_dir)
    dest = Path(dest) if dest else cache_dir / "exports" / f"{run_id}.onnx"
    images = ex.inputs(check_images)
    log(f"exporting {run_id} ({cfg['suite']}, {cfg['dataset']['name']}, {row['student']}: {ex.output}) "
        f"from {ex.weights} to {dest} ({exporter} exporter)")
    export_onnx(ex.net, images[:1], dest, exporter, ex.output_names)
    check = compare_outputs(ex.net, dest, images, atol, rtol)
    record = {"run_id": run_id, "suite": cfg["suite"], "dataset": cfg["dataset"]["name"], "model": row["student"],
              "method": row["method"], "seed": row["seed"], "onnx": dest.name,
              "input": {"name": "input", "shape": ["batch", *images.shape[1:]],
                        "preprocessing": ex.preprocessing},
              "output": {"names": ex.output_names, "meaning": ex.output}, "exporter": exporter, "check": check}
    atomic_write_json(dest.with_name(dest.name + ".json"), record)
    verdict = "OK" if check["ok"] else "FAILED"
    log(f"check {verdict}: onnxruntime vs PyTorch on {check['images']} test images (batch {check['images']} and 1): "
        f"max |difference| {check['max_abs_diff']:.3g} (tolerance atol {atol:g} + rtol {rtol:g} x |value|)")
    if not check["ok"]:
        raise ExportMismatch(f"export check FAILED for {run_id}: the ONNX outputs differ from PyTorch's by up to "
                             f"{check['max_abs_diff']:.6g} (beyond atol {atol:g} + rtol {rtol:g} x |value| by "
                             f"{check['max_excess']:.6g}); {dest} was written but must not be used")
    return {**record, "exportable": ex, "path": dest}


# --------------------------------------------------------------------------- faiss index of an image folder

def folder_images(folder: Path) -> list[tuple[Path, str | None]]:
    """(image path, class) of every image under ``folder``, sorted: the class is the first sub-folder,
    or None for images directly in ``folder``. Hidden files and folders are skipped."""
    if not folder.is_dir():
        raise SystemExit(f"--index-folder {folder} is not a folder")
    found = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not any(s.startswith(".") for s in rel.parts):
            found.append((p, rel.parts[0] if len(rel.parts) > 1 else None))
    if not found:
        raise SystemExit(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return found


def preprocess_like(test):
    """A function PIL image -> input tensor that prepares a file as the run's test split prepares its images:
    the split's own transform for image-file datasets; for in-memory tensor sets (the embedded data), the
    image is first resized to the split's (C, H, W) as uint8, then given the split's transform."""
    if hasattr(test, "paths"):  # ImageFileDataset: its transform reads PIL images
        return lambda img: test.transform(img.convert("RGB"))
    channels, height, width = (int(s) for s in test.images.shape[1:])

    def prepare(img):
        img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8).reshape(height, width, channels)
        return test.transform(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return prepare


def write_index(onnx_path: Path, test, folder: Path, dest: Path, normalized: bool,
                batch_size: int = 64) -> tuple[int, Path]:
    """Embed every image under ``folder`` with the ONNX model and write a faiss flat index to ``dest``
    (inner product for L2-normalised embeddings, else L2) and the image list to ``dest`` with ``.json``."""
    images = folder_images(folder)
    prepare, session = preprocess_like(test), _session(onnx_path)
    name = session.get_inputs()[0].name
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = []
        for path, _ in images[start:start + batch_size]:
            with Image.open(path) as img:
                batch.append(prepare(img))
        chunks.append(session.run(None, {name: torch.stack(batch).numpy()})[0])
    vectors = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
    index = (faiss.IndexFlatIP if normalized else faiss.IndexFlatL2)(vectors.shape[1])
    index.add(vectors)
    atomic_write_via(dest, lambda tmp: faiss.write_index(index, str(tmp)))
    paths_file = dest.with_name(dest.name + ".json")
    atomic_write_json(paths_file, {
        "index": dest.name, "model": onnx_path.name, "metric": "inner_product" if normalized else "l2",
        "dimension": int(vectors.shape[1]), "folder": str(folder),
        "images": [{"id": i, "path": path.relative_to(folder).as_posix(), "class": label}
                   for i, (path, label) in enumerate(images)]})
    return len(images), paths_file


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="RUN_ID", help="a run id of some runs.csv under --out")
    p.add_argument("--format", default="onnx", choices=FORMATS, help="export format (default: onnx)")
    p.add_argument("--out", default="results", help="results folder holding the run (default: results)")
    p.add_argument("--cache-dir", default="cache", help="where the run's checkpoint is (default: cache)")
    p.add_argument("--dest", help="ONNX file to write (default: <cache-dir>/exports/<RUN_ID>.onnx)")
    p.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"),
                   help="torch.onnx exporter: dynamo (torch.export-based, default) or torchscript (legacy)")
    p.add_argument("--check-images", type=int, default=64, help="test images compared (default 64)")
    p.add_argument("--atol", type=float, default=ATOL, help=f"absolute tolerance of the check (default {ATOL:g})")
    p.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance of the check (default {RTOL:g})")
    p.add_argument("--index-folder", metavar="DIR",
                   help="retrieval runs: embed the images under DIR into a faiss index")
    p.add_argument("--index-dest", metavar="FILE", help="faiss index to write (default: <dest> with .faiss)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.check_images < 1:
        p.error("--check-images must be at least 1")
    if args.index_dest and not args.index_folder:
        p.error("--index-dest needs --index-folder")
    if args.index_folder:  # fail before exporting
        suite = json.loads(locate_run(Path(args.out), args.run).read_text())["config"].get("suite")
        if suite not in RETRIEVAL_SUITES:
            raise SystemExit(f"--index-folder needs a retrieval run; {args.run} is a {suite} run")
        folder_images(Path(args.index_folder))
    record = export_run(args.run, Path(args.out), Path(args.cache_dir), Path(args.dest) if args.dest else None,
                        args.exporter, args.check_images, args.atol, args.rtol)
    print(f"wrote {record['path']} and {record['path'].name}.json beside it")
    if args.index_folder:
        ex = record["exportable"]
        index_dest = Path(args.index_dest) if args.index_dest else record["path"].with_suffix(".faiss")
        count, paths_file = write_index(record["path"], ex.test, Path(args.index_folder), index_dest, ex.normalized)
        print(f"wrote {index_dest} ({count} images) and {paths_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
