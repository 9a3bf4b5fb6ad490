"""Running a sweep: chunks of configurations as tasks, on one core or on Dask, streamed to Parquet.

A chunk is a range of configuration numbers (SweepSpec.chunk_range) evaluated on every
workload: one task, one Arrow table of (configuration, workload) rows. Finished chunks are
written as they arrive to `<out>.parts/part-NNNNNN.parquet` (written to a temporary name and
renamed, so a part file that exists is whole), beside a manifest holding the sweep's
fingerprint. When every chunk is done the parts are copied in order into `<out>` (and the CSV
file), one at a time, and the parts folder is removed. Memory stays bounded: a few chunks in
flight (`window`) and one part at a time while merging, whatever the sweep's size.

An interrupted sweep (Ctrl-C, a lost cluster) leaves its parts; running the same sweep
again skips the chunks already written. A different sweep with the same output refuses to
mix its results with them (`restart=True` starts again).

Executors: "local" evaluates in this process (one core); "dask" submits to a
dask.distributed client: an existing scheduler (`scheduler="tcp://host:8786"`), or a
LocalCluster of `workers` processes (threads with `threads=True`) started for the run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..chip.config import DATAFLOWS, PRECISIONS
from . import model
from .spec import SpecError, SweepSpec

SETTING_COLUMNS = ("rows", "cols", "dataflow", "precision", "clock_mhz", "ifmap_sram_kib", "filter_sram_kib",
                   "ofmap_sram_kib", "dram_bytes_per_cycle")
RESULT_COLUMNS = ("pes", "countable", "cycles", "compute_cycles", "stall_cycles", "macs", "folds", "utilization",
                  "mapping_efficiency", "sram_reads", "sram_writes", "dram_reads", "dram_writes", "dram_bytes",
                  "register_hops", "seconds", "energy_mac_pj", "energy_register_pj", "energy_sram_pj",
                  "energy_dram_pj", "energy_vector_pj", "energy_total_pj", "macs_per_joule")
COLUMNS = ("config", "workload", *SETTING_COLUMNS, *RESULT_COLUMNS)
CONNECT_TIMEOUT = 3  # seconds to reach a scheduler
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|inproc|ucx)://[^\s/]+")


class SweepError(ValueError):
    """A sweep that cannot run (unreachable scheduler, a parts folder of another sweep, ...): one line."""


@dataclass
class Outcome:
    out: str
    csv: str | None
    chunks: int
    skipped: int  # chunks found done (resumed)
    points: int
    evaluations: int
    seconds: float
    complete: bool


# ------------------------------------------------------------------------------------ one chunk


def evaluate_chunk(spec: SweepSpec, index: int):
    """Chunk `index` of `spec` as an Arrow table (COLUMNS), rows ordered by configuration, then workload."""
    start, stop = spec.chunk_range(index)
    configs = spec.configs(start, stop)
    size, count = stop - start, len(spec.workloads)
    results = [model.evaluate_workload(configs, w, cache={}) for w in spec.workloads]
    columns = {"config": np.repeat(np.arange(start, stop, dtype=np.int64), count),
               "workload": np.tile(np.arange(count, dtype=np.int32), size)}
    for name in SETTING_COLUMNS:
        columns[name] = np.repeat(getattr(configs, name), count)
    for name in RESULT_COLUMNS:
        columns[name] = np.stack([r[name] for r in results], axis=1).reshape(-1)
    return _table(columns, spec)


def _table(columns: dict, spec: SweepSpec):
    import pyarrow as pa

    arrays = []
    for name in COLUMNS:
        values = columns[name]
        if name in ("dataflow", "precision", "workload"):
            labels = {"dataflow": DATAFLOWS, "precision": PRECISIONS,
                      "workload": [w.name for w in spec.workloads]}[name]
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32)), pa.array(labels)))
        else:
            arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=list(COLUMNS))


def evaluate_all(spec: SweepSpec):
    """The whole sweep as one table, in this process (for small sweeps and tests)."""
    import pyarrow as pa

    return pa.concat_tables([evaluate_chunk(spec, i) for i in range(spec.chunks)])


# ------------------------------------------------------------------------------------ running


def parts_dir(out: str) -> str:
    return os.fspath(out) + ".parts"


def _part(folder: str, index: int) -> str:
    return os.path.join(folder, f"part-{index:06d}.parquet")


def _prepare(spec: SweepSpec, out: str, restart: bool) -> tuple[str, set[int]]:
    folder = parts_dir(out)
    manifest = os.path.join(folder, "manifest.json")
    fingerprint = spec.fingerprint()
    if restart and os.path.isdir(folder):
        shutil.rmtree(folder)
    if os.path.isdir(folder):
        try:
            with open(manifest, encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            found = {}
        if found.get("fingerprint") != fingerprint:
            raise SweepError(f"{folder} holds the parts of a different (or unreadable) sweep; remove it, or pass "
                             f"--restart to start this sweep again")
        done = {int(name[5:11]) for name in os.listdir(folder)
                if re.fullmatch(r"part-\d{6}\.parquet", name) and int(name[5:11]) < spec.chunks}
        return folder, done
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise SweepError(f"cannot write {out!r}: the folder {parent!r} does not exist")
    os.makedirs(folder)
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump({"fingerprint": fingerprint, "chunks": spec.chunks, "source": spec.source}, f)
    return folder, set()


def evaluate_and_write(spec: SweepSpec, index: int, folder: str) -> int:
    """A task for workers that share this machine's files (a LocalCluster): evaluate chunk `index`
    and write its part there, returning only its row count, so that the client neither decodes
    nor writes the tables (it would compete with the workers for the same cores)."""
    table = evaluate_chunk(spec, index)
    _write_part(folder, index, table)
    return table.num_rows


def _write_part(folder: str, index: int, table) -> None:
    import pyarrow.parquet as pq

    path = _part(folder, index)
    pq.write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)


def _metadata(spec: SweepSpec) -> dict:
    return {"chipviz.sweep": json.dumps({"source": spec.source, "fingerprint": spec.fingerprint(),
                                         "workloads": [w.describe() for w in spec.workloads],
                                         "configurations": spec.size})}


def _merge(spec: SweepSpec, folder: str, out: str, csv: str | None) -> None:
    """Copy the parts, in chunk order and one at a time, into `out` (and `csv`), then drop them."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    writer = csv_writer = None
    try:
        for index in range(spec.chunks):
            table = pq.read_table(_part(folder, index))
            if writer is None:
                schema = table.schema.with_metadata(_metadata(spec))
                writer = pq.ParquetWriter(out + ".tmp", schema)
                if csv:
                    csv_writer = pcsv.CSVWriter(csv + ".tmp", _csv_table(table).schema)
            writer.write_table(table.replace_schema_metadata(schema.metadata))
            if csv_writer is not None:
                csv_writer.write_table(_csv_table(table))
    finally:
        if writer is not None:
            writer.close()
        if csv_writer is not None:
            csv_writer.close()
    os.replace(out + ".tmp", out)
    if csv:
        os.replace(csv + ".tmp", csv)
    shutil.rmtree(folder)


def _csv_table(table):
    """Dictionary columns as plain strings (spreadsheets read text)."""
    import pyarrow as pa

    columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in
               (table.column(i).combine_chunks() for i in range(table.num_columns))]
    return pa.Table.from_arrays(columns, names=table.column_names)


def run_sweep(spec: SweepSpec, out: str, *, csv: str | None = None, executor: str = "dask",
              scheduler: str | None = None, workers: int = 2, threads: bool = False, client=None,
              restart: bool = False, progress: bool = True, stop_after: int | None = None,
              window: int | None = None) -> Outcome:
    """Run `spec`, writing `out` (Parquet) and optionally `csv`. `stop_after` stops (as an
    interruption would) after that many chunks were written this run: the result is then
    incomplete and a later run resumes. `client`: an existing dask.distributed Client."""
    out = os.fspath(out)
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be local or dask, got {executor!r}")
    if scheduler is not None and not _ADDRESS.fullmatch(scheduler):
        raise SweepError(f"--scheduler must look like tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786), got {scheduler!r}")
    if csv is not None and os.path.abspath(csv) == os.path.abspath(out):
        raise SweepError("the CSV file and the Parquet file must differ")
    started = time.perf_counter()
    cluster = None
    if executor == "dask" and client is None:  # first: an unreachable scheduler leaves nothing behind
        client, cluster = connect(scheduler, workers, threads)
        own = True
    else:
        own = False
    bar = None
    written = 0
    try:
        folder, done = _prepare(spec, out, restart)
        todo = [i for i in range(spec.chunks) if i not in done]
        bar = _Bar(spec, todo, progress)
        if todo:
            if executor == "local":
                for index in todo:
                    _write_part(folder, index, evaluate_chunk(spec, index))
                    written += 1
                    bar.advance(spec, index)
                    if stop_after is not None and written >= stop_after:
                        break
            else:
                written = _run_dask(spec, folder, todo, bar, client, stop_after, window,
                                    workers_write=_on_this_machine(client))
    finally:
        if bar is not None:
            bar.close()
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    complete = len(done) + written == spec.chunks
    if complete:
        _merge(spec, folder, out, csv)
    return Outcome(out, csv, spec.chunks, len(done), spec.points, spec.evaluations,
                   time.perf_counter() - started, complete)


def _run_dask(spec, folder, todo, bar, client, stop_after, window, workers_write: bool = False) -> int:
    """Chunks as tasks, a few in flight. `workers_write`: the workers are on this machine (a
    LocalCluster this run started), so each writes its own part; otherwise the tables come back
    and are written here (a remote cluster's workers may not see this folder)."""
    from distributed import as_completed

    futures = None
    try:
        nworkers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        window = window or 2 * nworkers + 1
        spec_future = client.scatter(spec, broadcast=True, hash=False)
        key = f"{spec.fingerprint()}-{os.urandom(4).hex()}"  # this run's tasks: never an older run's keys
        pending = iter(todo)
        futures = as_completed()

        def submit(index):
            if workers_write:
                return client.submit(evaluate_and_write, spec_future, index, folder, key=f"sweep-{key}-{index}",
                                     pure=False)
            return client.submit(evaluate_chunk, spec_future, index, key=f"sweep-{key}-{index}", pure=False)

        for index in _take(pending, window):
            futures.add(submit(index))
        written = 0
        for future in futures:
            result = future.result()
            index = int(future.key.rsplit("-", 1)[1])
            if not workers_write:
                _write_part(folder, index, result)
            future.release()
            written += 1
            bar.advance(spec, index)
            if stop_after is not None and written >= stop_after:
                break
            for index in _take(pending, 1):
                futures.add(submit(index))
        return written
    finally:
        if futures is not None:  # stopped early: cancel what is still queued or running
            for future in list(getattr(futures, "futures", ())):
                future.cancel()


def _on_this_machine(client) -> bool:
    """Whether the client's workers are a LocalCluster's (they see this machine's files)."""
    from distributed import LocalCluster

    return isinstance(getattr(client, "cluster", None), LocalCluster)


def _take(iterator, n: int) -> list:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) >= n:
            break
    return out


def connect(scheduler: str | None = None, workers: int = 2, threads: bool = False):
    """(client, cluster): a Client of the scheduler at `scheduler` (SweepError within about
    CONNECT_TIMEOUT seconds if it cannot be reached), or of a new LocalCluster (cluster is None for
    an existing scheduler)."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not _ADDRESS.fullmatch(scheduler):
            raise SweepError(f"--scheduler must look like tcp://HOST:PORT, got {scheduler!r}")
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except Exception as exc:  # OSError, TimeoutError; or garbage from something that is not a scheduler
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT} s "
                             f"({reason[:160]})") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise SweepError(f"--workers must be a whole number from 1 to 256, got {workers!r}")
    import dask

    # Dask's nannies make glibc return freed memory at once (MALLOC_TRIM_THRESHOLD_=64 KiB), which makes
    # the model's large temporary arrays expensive in the workers: keep glibc's usual behaviour instead.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2**20}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=not threads,
                               dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


class _Bar:
    """tqdm on stderr over the evaluations this run does (resumed chunks are not counted)."""

    def __init__(self, spec: SweepSpec, todo: list[int], shown: bool):
        self.bar = None
        if shown:
            from tqdm import tqdm

            total = sum(spec.chunk_range(i)[1] - spec.chunk_range(i)[0] for i in todo) * spec.items_per_config
            self.bar = tqdm(total=total, unit="eval", unit_scale=True, file=sys.stderr, desc="sweep",
                            dynamic_ncols=True, leave=False)

    def advance(self, spec: SweepSpec, index: int) -> None:
        if self.bar is not None:
            start, stop = spec.chunk_range(index)
            self.bar.update((stop - start) * spec.items_per_config)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_limit(spec: SweepSpec, limit: int) -> None:
    """SpecError saying how large the sweep is and what the limit is, if it is over `limit` evaluations."""
    if spec.evaluations > limit:
        raise SpecError(f"this sweep has {spec.evaluations:,} evaluations ({spec.describe()}), over the limit of "
                        f"{limit:,}; narrow the ranges")
