"""The run loop every suite shares: teacher and student jobs, result rows, run files, tables.

A suite (``benchmarks.runner.task.Suite``: ``benchmarks.runner.tasks.get_suite("retrieval")``,
``classification``, ``detection``) provides the parts that differ between tasks, and
``run_suite(suite, ...)`` does the rest the same way for all of them:

    PRIMARY                                                        the leaderboard's metric
    prepare_data(cfg, cache_dir, log) -> {split: dataset}
    teacher_checkpoint(cfg, cache_dir, seed) -> Path                (seed: the teacher's, teacher_seed_of)
    load_or_train_teacher(cfg, data, seed, cache_dir, progress, log) -> (model, record, hash)
    run_id_of(cfg, method, seed) -> (run id, config hash)
    train_student(cfg, data, teacher, method, options, seed, progress, checkpoint, resume_tag)
        -> (student, TrainResult)
    evaluate_student(model, data, cfg, progress, desc) -> {metric: value}
    make_row(cfg, method, seed, run_id, config_hash, test, seconds, epoch, commit) -> dict
    cost_networks(cfg, data) -> {"teacher": net, "student": net} or None
    table_notes(cfg, data, commit) -> [markdown lines under the leaderboard]
    setup_names(cfg) -> [names], setup(cfg, data, name, progress, log)   optional: jobs that run
        before the teachers (the retrieval suite pretrains its backbones there)

Jobs run through ``benchmarks.runner.jobs.run_jobs`` (``cfg["workers"]`` at once, on the launcher's
processes: ``benchmarks.runner.launch``); each job process looks the suite up by name and builds its
data once. Every training run
saves its state after each epoch beside its checkpoint, so a killed command resumes.
Under torchrun all processes train each job together and rank 0 writes.

Progress is shown by the main process (``benchmarks.runner.progress``), the same with one worker
or several: on a terminal an overall bar and a line per running job, otherwise (or with
``progress=False``) a line per job started, epoch and job done. The jobs' messages go
through it, so each is printed once; the suite's own progress bars stay off.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from benchmarks.report.pareto import write_pareto
from benchmarks.report.tables import write_suite_tables
from benchmarks.runner import progress as live
from benchmarks.runner.config import config_hash, deep_merge, method_options  # noqa: F401 (re-exported)
from benchmarks.runner.jobs import job_count, run_jobs
from benchmarks.runner.launch import LocalLauncher, interrupt, make_launcher
from benchmarks.runner.replicates import design_note, design_of, replicate_config, replicate_draws
from benchmarks.runner.results_io import atomic_write_json, atomic_write_via, read_runs, upsert_rows
from benchmarks.runner.schema import typed
from benchmarks.runner.tasks import get_suite
from benchmarks.runner.tracking import teacher_run_id, tracking
from retrieval.cost import row_record, suite_cost
from retrieval.engine import distributed, seed_everything
from retrieval.engine.train_state import trainable_state
from retrieval.methods import list_methods, needs_teacher
from retrieval.utils.cache_files import has_keys, intact, load_torch, move_aside

_PREPARED: dict = {}


def _data_key(cfg: dict) -> dict:
    """What a suite's ``prepare_data`` reads of a config: the dataset, the threads, and each role's
    ``select`` (a role that keeps its last epoch trains on the whole ``train`` split in classification)."""
    selects = [deep_merge(cfg.get("train") or {}, (cfg.get(role) or {}).get("train") or {}).get("select")
               for role in ("teacher", "student")]
    return {"dataset": cfg["dataset"], "threads": cfg.get("threads"), "select": selects}


def suite_data(suite, cfg: dict, cache_dir: Path, log=print) -> dict:
    """``suite.prepare_data`` once per process and data (each pool worker builds its own; the jobs
    build it silently, the main process has said what it holds)."""
    key = (suite.name, config_hash(_data_key(cfg)), str(cache_dir))
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = suite.prepare_data(cfg, cache_dir, log)
    return _PREPARED[key]


def setup_job(job: dict, name: str, seed: int | None = None) -> None:
    """One of the suite's setup jobs (``suite.setup``), run before any teacher: that of replicate ``seed``
    (None: the one setup every seed shares, under conditional replicates). A setup job reads no split of
    the run's data, only the cache folder."""
    suite = get_suite(job["suite"])
    cfg, log = job["cfg"], job.get("log", print)
    if seed is not None:
        cfg = replicate_config(cfg, seed)
    threads = typed(cfg).threads
    if threads:  # as the suites' prepare_data sets them for the other jobs
        torch.set_num_threads(threads)
    suite.setup(cfg, {"cache_dir": Path(job["cache_dir"])}, name, job["progress"], log)


def setup_jobs(suite, cfg: dict, job: dict, seeds) -> list[tuple[str, object]]:
    """(name, job) of every setup job of a run: the suite's setup names once, or under full replicates
    once per replicate (``setup <name> s<seed>``: each replicate pretrains its own backbones)."""
    if design_of(cfg) != "full":
        return [(f"setup {name}", partial(setup_job, job, name)) for name in suite.setup_names(cfg)]
    return [(f"setup {name} s{seed}", partial(setup_job, job, name, seed))
            for seed in seeds for name in suite.setup_names(replicate_config(cfg, seed))]


def design_hash(cfg: dict, replicate_hash: str, of_design) -> str:
    """The ``config_hash`` of a row: the hash of the run's config, the same for every replicate of it
    (the leaderboard groups rows by it). Under conditional replicates that is the suite's own hash of
    the run (``replicate_hash``); under full replicates, where each replicate's config holds its drawn
    seeds, the hash of ``of_design()`` (the suite's hash of the config before the draws) and the design."""
    if design_of(cfg) != "full":
        return replicate_hash
    return config_hash({"replicates": "full", "config": of_design()})


def teacher_job(job: dict, seed: int) -> dict | None:
    """Train (or load) the teacher of ``seed``; return its row and the rest of its run JSON. Its curves and
    test metrics go to ``<dest>/tensorboard/teacher-<hash>-s<seed>/`` (``benchmarks.runner.tracking``; a
    teacher loaded from the cache only adds its test metrics, to a folder that has none)."""
    suite = get_suite(job["suite"])
    design, log, cache_dir = job["cfg"], job.get("log", print), job["cache_dir"]
    cfg = replicate_config(design, seed)
    data = suite_data(suite, cfg, cache_dir, _silent)
    cached = _cached_teacher_fits(suite.teacher_checkpoint(cfg, cache_dir, seed), suite.data_digest(data))
    with tracking({**job, "cfg": cfg}, teacher_run_id(suite, cfg, cache_dir, seed), "teacher", seed=seed) as tracked:
        _, record, thash = suite.load_or_train_teacher(cfg, data, seed, cache_dir, job["progress"], log)
        if not distributed.is_main():  # under torchrun only rank 0 scores and writes
            return None
        tracked.finish(record["test"])
    epoch = record.get("best_epoch", record.get("epoch"))
    row = suite.make_row(cfg, "teacher", seed, f"teacher-{thash}-s{seed}",
                         design_hash(design, thash, lambda: suite.teacher_hash(design)), record["test"],
                         record["seconds"], epoch, job["commit"])
    row["replicates"] = design_of(design)
    # the teacher row is reproducible like a student row (its history comes from the cache record
    # when the teacher was loaded rather than trained by this run)
    return {"row": row, "record": {"config": design, "replicate": replicate_draws(design, seed),
                                   "environment": job["env"], "history": record.get("history", []),
                                   "teacher_loaded_from_cache": cached}}


def _cached_teacher_fits(path: Path, data: str) -> bool:
    """Whether the teacher cached at ``path`` will be loaded: whole, and trained on the data of digest ``data``
    (a damaged or stale file is trained again)."""
    return intact(path) and torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("data") == data


def student_job(job: dict, seed: int, method: str) -> dict | None:
    """Train one student against the cached teacher of ``seed`` (resuming a killed run); return its row
    (also upserted into runs.csv at once, without cost columns) and the rest of its run JSON. Its curves and
    test metrics go to ``<dest>/tensorboard/<run_id>/`` (``benchmarks.runner.tracking``)."""
    suite = get_suite(job["suite"])
    design, log, cache_dir = job["cfg"], job.get("log", print), job["cache_dir"]
    cfg = replicate_config(design, seed)  # the data, pretraining, initial weights and teacher of replicate seed
    data = suite_data(suite, cfg, cache_dir, _silent)
    run_id, chash = suite.run_id_of(cfg, method, seed)
    chash = design_hash(design, chash, lambda: suite.run_id_of(design, method, seed)[1])
    with tracking({**job, "cfg": cfg}, run_id, "student", method, seed) as tracked:
        student, result = student_step(suite, cfg, data, method, cfg["methods"].get(method), seed, cache_dir,
                                       job["progress"], checkpoint=student_checkpoint(cfg, cache_dir, run_id),
                                       resume_tag=job["commit"])
        if not distributed.is_main():
            return None
        live.job_phase("test")
        test = suite.evaluate_student(student, data, cfg, job["progress"], f"{method} test")
        tracked.finish(test)
    log(f"{method:>8} seed {seed}: test {suite.PRIMARY} {100 * test[suite.PRIMARY]:.2f} "
        f"(epoch {result.best_epoch}, {result.seconds:.0f}s)")
    row = suite.make_row(cfg, method, seed, run_id, chash, test, result.seconds, result.best_epoch, job["commit"])
    row["replicates"] = design_of(design)
    upsert_rows(job["dest"] / "runs.csv", [row])
    return {"row": row, "record": {"config": design, "replicate": replicate_draws(design, seed),
                                   "environment": job["env"], "history": result.history}}


def _silent(*args, **kwargs) -> None:
    pass


# ------------------------------------------------------- the two steps of every job, for every command
# A run's student jobs, the tuner's grid cells, the search's trials and the dry run's jobs all train a
# student through ``student_step`` and find its teacher through ``teacher_step``: what differs between the
# commands is the config of the unit (a replicate, a fold) and what they do with the trained network.

def teacher_step(suite, cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=_silent):
    """(teacher, record, hash) of the students of replicate ``seed``: the teacher of ``teacher_seed_of(cfg,
    seed)``, loaded from ``cache_dir`` or trained and cached there (``suite.load_or_train_teacher``)."""
    return suite.load_or_train_teacher(cfg, data, teacher_seed_of(cfg, seed), Path(cache_dir), progress, log)


def student_step(suite, cfg: dict, data: dict, method: str, options: dict | None, seed: int, cache_dir: Path,
                 progress: bool, checkpoint: Path | None = None, resume_tag: str | None = None):
    """Train one student of ``method`` with ``options`` on replicate ``seed``: its teacher first (only when
    the method reads one: ``none`` runs without, beside the teachers' training), then
    ``suite.train_student`` (resumable from ``checkpoint``'s state under ``resume_tag``).
    Returns (student, TrainResult)."""
    teacher = None
    if needs_teacher(method_options(cfg, method, options)[0]):
        live.job_phase("loading the teacher")
        teacher, _, _ = teacher_step(suite, cfg, data, seed, cache_dir, progress)
    if resume_tag is not None:  # a state saved on other data under the same config is not resumed
        resume_tag = f"{resume_tag} data {suite.data_digest(data)}"
    return suite.train_student(cfg, data, teacher, method, options, seed, progress, checkpoint=checkpoint,
                               resume_tag=resume_tag)


def student_checkpoint(cfg: dict, cache_dir: Path, run_id: str) -> Path:
    """Where a student run's selected weights (student + connectors/heads) are kept."""
    spec = typed(cfg)
    return cache_dir / "students" / spec.suite / spec.dataset.name / f"{run_id}.pt"


def train_state_path(checkpoint: Path) -> Path:
    """The per-epoch training state kept beside a checkpoint, from which a killed run resumes."""
    return checkpoint.with_name(checkpoint.stem + ".state.pt")


def cached_teacher(path: Path, cfg: dict, seed: int, network, train_fn, test_fn, primary: str, log=print,
                   complete=None, data: str | None = None) -> tuple:
    """The teacher of every task, cached at ``path``: ``network(cached) -> model`` makes the network under
    the config's initial weights of ``seed`` (``seed_init``; then every generator is seeded with ``seed``
    for training; ``cached``: its weights are about to be loaded, so a task may skip what only training
    needs, such as a pretrained backbone); then its weights are loaded from ``path``, or it
    is trained with ``train_fn(model, state_path) -> TrainResult`` (resumable), scored with
    ``test_fn(model) -> metrics`` (``test_fn`` None: no test split, as in the tuner; the record's test is
    None) and weights and record are cached atomically. ``complete(record) -> bool``: whether a cached
    record holds every test metric the run reports; when it does not (a teacher trained by the tuner, or
    a metric added since), it is scored again and saved again. ``data``: the digest of the data the teacher
    learns from (``retrieval.data.fingerprint.data_digest``), recorded in the file; a cached file of another
    digest, or of none, was trained on other data under the same config: it is moved aside
    (``<name>.stale-<time>``, one line) and the teacher trained again.
    Returns (model, record: test metrics, seconds, epoch and history). Under torchrun every rank loads
    or trains (all take rank 0's branch); rank 0 alone scores and writes, and the others wait for it and
    return its record."""
    blob = load_teacher(path, data)  # None: not cached, damaged or stale (moved aside); under torchrun rank 0's answer
    seed_init(cfg, seed)
    model = network(blob is not None)
    seed_everything(seed)
    if blob is not None:
        model.load_state_dict(blob["state_dict"])
        log(f"teacher seed {seed}: loaded from cache {path}")
        record = blob["record"]
        if complete is not None and test_fn is not None and not complete(record) and distributed.is_main():
            record["test"] = test_fn(model)
            _save_teacher(path, model, record, data)
        distributed.barrier()
        return model, record
    state = train_state_path(path)
    result = train_fn(model, state)
    record = None
    if distributed.is_main():
        test = test_fn(model) if test_fn is not None else None
        record = {"test": test, "seconds": result.seconds, "epoch": result.best_epoch, "history": result.history}
        _save_teacher(path, model, record, data)
        state.unlink(missing_ok=True)  # the cached teacher is the finished run
        scored = f"test {primary} {100 * test[primary]:.2f}" if test else "no test split"
        log(f"teacher seed {seed}: {scored} (epoch {result.best_epoch}, trained in {result.seconds:.0f}s)")
    return model, distributed.broadcast_object(record)  # the other ranks wait here until the file is written


def _save_teacher(path: Path, model, record: dict, data: str | None = None) -> None:
    blob = {"state_dict": model.state_dict(), "record": record, **({"data": data} if data is not None else {})}
    atomic_write_via(path, lambda tmp: torch.save(blob, tmp))


def load_teacher(path: Path, data: str | None = None) -> dict | None:
    """The cached teacher file ``{"state_dict", "record"[, "data"]}`` of ``path``, or None when there is none,
    it is damaged (moved aside, with a line saying so: ``retrieval.utils.cache_files``) or, with ``data``
    given, it records another data digest or none (moved aside as stale, with a line); the caller trains it
    then. Under torchrun rank 0 checks the file and every rank takes its branch."""
    blob = load_torch(path, has_keys("state_dict", "record")) if distributed.is_main() else None
    if blob is not None and data is not None and blob.get("data") != data:
        found = f"data {blob['data']}" if blob.get("data") else "no record of its data"
        move_aside(path, f"trained on other data: {found}, this run's {data}", state="stale")
        blob = None
    if not distributed.broadcast_object(blob is not None):
        return None
    return blob if blob is not None else torch.load(path, map_location="cpu", weights_only=True)


def teacher_seed_of(cfg: dict, seed: int) -> int:
    """The seed of the teacher the students of ``seed`` distil from: the config's ``teacher_seed``
    (one teacher for every seed, as RepDistiller distils one pretrained teacher into students of several
    seeds) or, when it is unset, the seed's own."""
    shared = cfg.get("teacher_seed")
    return seed if shared is None else int(shared)


def teacher_key(cfg: dict) -> dict:
    """What a student run's identity adds for a shared teacher (nothing when each seed has its own, so
    that the run ids of such configs do not change)."""
    return {} if cfg.get("teacher_seed") is None else {"teacher_seed": int(cfg["teacher_seed"])}


def teacher_notes(cfg: dict) -> list[str]:
    """The table's line on a shared teacher (none when each seed has its own)."""
    if cfg.get("teacher_seed") is None:
        return []
    return [f"Teacher: one teacher (seed {int(cfg['teacher_seed'])}) for every seed, trained once; the seeds vary "
            f"the students alone, and the teacher row is that one run (no spread over seeds)."]


def seed_init(cfg: dict, seed: int) -> None:
    """Seed the initial weights: ``init_seed`` when the config fixes them, else the run's seed."""
    init_seed = cfg.get("init_seed")
    seed_everything(seed if init_seed is None else init_seed)


def train_seeded_student(cfg: dict, seed: int, build, train_fn, checkpoint: Path | None = None,
                         resume_tag: str | None = None):
    """One student run the way every suite does it: ``build()`` the method from the config's initial
    weights, then ``train_fn(method, state_path, resume_tag) -> TrainResult`` under the run's seed (batch
    order, augmentation, sampling). With a ``checkpoint``, the training state is kept beside it after each
    epoch (a run saved under the same ``resume_tag``, the commit, continues or is not retrained) and the
    selected weights, teacher excluded, are written to it. Returns (student, TrainResult)."""
    seed_init(cfg, seed)  # the same initial weights for every method
    method = build()
    seed_everything(seed)
    state = train_state_path(checkpoint) if checkpoint is not None else None
    result = train_fn(method, state, resume_tag)
    if checkpoint is not None and distributed.is_main():
        weights = trainable_state(method)
        atomic_write_via(checkpoint, lambda tmp: torch.save(weights, tmp))
    return method.student, result


def method_needs_teacher(cfg: dict, method_name: str) -> bool:
    """Whether a run of ``method_name`` (registered or a named variant of the config) reads a teacher."""
    return needs_teacher(method_options(cfg, method_name, cfg["methods"].get(method_name))[0])


def write_runs(suite, cfg: dict, data: dict, dest: Path, results: list[dict]) -> list[dict]:
    """Add the cost columns to every row and write runs/<run_id>.json and runs.csv; return the rows.

    Cost is measured here, once per network, after every job has finished, so that no training
    shares the CPU with the timing (untrained weights: the counts, file size and speed of a
    network do not depend on its values)."""
    networks = suite.cost_networks(cfg, data) or {}
    cost = {role: suite_cost(net, data["test"], cfg) for role, net in networks.items()}
    rows = []
    for result in results:
        row = {**result["row"], **cost.get("teacher" if result["row"]["method"] == "teacher" else "student", {})}
        atomic_write_json(dest / "runs" / f"{row['run_id']}.json", {**row_record(row), **result["record"]})
        rows.append(row)
    upsert_rows(dest / "runs.csv", rows)
    return rows


def check_methods(cfg: dict) -> list[str]:
    """The config's ``run`` list, each a registered method or a named variant of one."""
    spec = typed(cfg)
    methods = list(spec.run)
    known = set(list_methods()) | {name for name, opts in spec.methods.items() if "method" in (opts or {})}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {sorted(known)}")
    return methods


def run_suite(suite, cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True,
              log=print, environment: dict | None = None, launcher=None) -> Path:
    """Run ``cfg`` with ``suite`` (a ``Suite``); return the folder holding its tables.

    ``cfg["workers"]`` (default 1) jobs run at once, each in its own process, started by ``launcher``
    (``benchmarks.runner.launch``; default: the config's ``launcher`` section, else local processes). ``progress``: live
    bars on a terminal (see ``benchmarks.runner.progress``); without it, or off a terminal, a line per
    job started, epoch and job done. Every message goes to ``log``."""
    methods = check_methods(cfg)
    spec = typed(cfg)
    workers = spec.workers or 1
    if distributed.is_distributed():  # each job is trained by all the torchrun processes together
        if not distributed.is_main():
            log, progress = (lambda *a, **k: None), False
        if workers != 1:
            log(f"torchrun: {distributed.world_size()} processes train each job together; workers {workers} -> 1")
        workers = 1
    cache_dir = Path(cache_dir)
    if launcher is None:  # under torchrun the processes of this command are the job's: always local
        launcher = (LocalLauncher() if distributed.is_distributed()
                    else make_launcher(cfg.get("launcher"), folder=cache_dir / "slurm", cfg=cfg))
    if launcher.name != "local":  # its jobs run in other processes and nodes: the folders spelt in full
        out_dir, cache_dir = Path(out_dir).resolve(), cache_dir.resolve()
        log(f"launcher {launcher.name}: up to {workers} job(s) at once as {launcher.describe()}")
    data = suite_data(suite, replicate_config(cfg, spec.seeds[0]), cache_dir, log)  # the first replicate's
    dest = Path(out_dir) / spec.suite / spec.dataset.name
    # the suite's own tqdm bars stay off: the reporter shows every job's progress (and prints its messages)
    job = {"suite": suite.name, "cfg": cfg, "dest": dest, "cache_dir": cache_dir, "commit": commit,
           "env": environment or {}, "progress": False, "log": live.job_log}
    setup = setup_jobs(suite, cfg, job, spec.seeds)
    teacher_of = partial(teacher_seed_of, cfg)
    with live.Reporter(job_count(spec.seeds, methods, setup, teacher_of), progress, log) as reporter:
        try:
            results = run_jobs(partial(teacher_job, job), partial(student_job, job), spec.seeds, methods, workers,
                               log, setup, reporter=reporter, suite=spec.suite, teacher_of=teacher_of,
                               needs_teacher=partial(method_needs_teacher, cfg), launcher=launcher)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (benchmarks.runner.launch.interrupt): where the rows are
            interrupt.note(exc, rows=dest / "runs.csv")
            raise
    if not distributed.is_main():  # rank 0 writes the run files and tables
        return dest
    rows = write_runs(suite, cfg, data, dest, results)
    hashes = {r["config_hash"] for r in rows}
    table = read_runs(dest / "runs.csv")
    title = f"{spec.suite}: {spec.dataset.name}"
    notes = suite.table_notes(cfg, data, commit) + teacher_notes(cfg) + [design_note(cfg)]
    write_suite_tables(dest, table[table["config_hash"].isin(hashes)], suite.PRIMARY, title,
                       notes)  # leaderboard.csv, leaderboard.md, pairwise.csv
    write_pareto(dest)
    return dest
