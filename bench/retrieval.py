"""Answer-quality benchmark of knowledge retrieval: does the customer's question find the right entry?

    .venv/bin/python bench/retrieval.py [--method lexical] [--threshold 0.3] [--filler 0] [--json out.json]
                                        [--fresh] [--record]

Imports bench/data/retrieval_kb.json (a shop's knowledge base, written for this benchmark) into the `bench`
tenant of the benchmark's OWN database (`wecomdesk_bench_retrieval`, created if missing; the tenant is created
on first use and its entries replaced every run; `--fresh` recreates it), through the product's own import path
(kb.tabular's CSV, then kb.services.import_entries), then asks every question of
bench/data/retrieval_questions.json (customer wordings: colloquial, typos, synonyms, English mixed, emoji; plus
out-of-scope questions whose expected entry is null) through the chosen retrieval method, one question at a
time as the answering round asks it, and reports:

- ranking, over the in-scope questions: hit@1, hit@3 (the right entry among the first 3), MRR (over the first
  `--depth` results, 0 when absent);
- knowledge-only answering at `--threshold` (default: DeskSettings.knowledge_min_score's default, what a new
  tenant gets): the best match answers when its score reaches the threshold, as
  conversations/services/answering/rounds.py decides. In-scope questions answered right / answered wrong /
  not answered, and out-of-scope questions answered (all wrong); plus the same at other thresholds;
- search latency p50/p95/max (wall time of one search call, in this process);
- the misses, to read.

Methods (`--method`): `lexical` is kb.selectors.search_knowledge_many, exactly what the answering path calls,
for a tenant without embeddings; `hybrid` is the same call with the tenant's entries embedded by the embed job's
function (in this process, after the import), lexical and vector rankings fused (kb.ranking).
`--synonyms PATH` gives the bench tenant synonym groups (a JSON list of word lists, saved through kb.synonyms as
the admin saves them; none by default).
A new method is a class with `name` and `rank(question, depth)` registered in METHODS; everything else
(metrics, threshold sweep, report) is shared. bench/embedding_models.py imports the data set and metrics from
here to compare in-process embedding models.

`--filler N` adds N generated product-detail entries (never the right answer) to measure quality and latency
on a larger knowledge base; `--json PATH` writes every number and every question's ranking; `--record` writes
the summary (one results row and a latency line; the threshold sweep and stage table stay on stdout) into
docs/BENCHMARKS.md; `--latency` adds each question's search timed stage by stage (synonyms,
the embedding's wall and CPU time, lexical, vectors and fusion: the embedding cost per query apart).
Exit status: 0 ran, 2 could not run.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchkit  # bench/ is on sys.path when run as a script
import psycopg
from benchkit import TENANT, BenchError, percentile

DATA = Path(__file__).resolve().parent / "data"
KB_PATH = DATA / "retrieval_kb.json"
QUESTIONS_PATH = DATA / "retrieval_questions.json"
DATABASE = "wecomdesk_bench_retrieval"
REDIS_DB = 13  # nothing is written there; the settings want a URL
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


# -- the data set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    id: str
    question: str
    answer: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    text: str
    expected: str | None  # the id of the entry that answers it; None: the knowledge base does not cover it


def load_kb(path: Path = KB_PATH) -> list[Entry]:
    entries = [Entry(e["id"], e["question"], e["answer"], tuple(e["tags"])) for e in json.loads(path.read_text())]
    if len({e.id for e in entries}) != len(entries):
        raise BenchError(f"{path}: duplicate ids")
    return entries


def load_questions(entries: list[Entry], path: Path = QUESTIONS_PATH) -> list[Question]:
    questions = [Question(q["text"], q["expected"]) for q in json.loads(path.read_text())]
    known = {e.id for e in entries}
    unknown = {q.expected for q in questions if q.expected is not None and q.expected not in known}
    if unknown:
        raise BenchError(f"{path}: expected ids not in the knowledge base: {sorted(unknown)}")
    return questions


def filler_entries(count: int, seed: int) -> list[Entry]:
    """`count` distinct product-detail entries (brand x category x attribute), none of them an answer to a
    question of the set: the long tail of a real shop's knowledge base."""
    brands = ["悦家", "森屿", "北极星", "小满", "青禾", "云朵", "木子", "拾光", "嘉禾", "南山", "知行", "星河", "初见",
              "橙意", "麦田", "山川", "暖阳", "清风", "若水", "简一", "果壳", "鹿鸣", "禾木", "远山", "白鹭"]
    categories = ["保温杯", "电饭煲", "空气炸锅", "吹风机", "床垫", "羽绒服", "运动鞋", "双肩包", "台灯", "电动牙刷",
                  "扫地机器人", "加湿器", "蓝牙耳机", "机械键盘", "婴儿推车", "瑜伽垫", "行李箱", "护手霜", "茶具",
                  "不粘锅", "净水器", "电热毯", "儿童书桌", "智能手表", "剃须刀", "榨汁机", "收纳箱", "四件套",
                  "电风扇", "折叠伞", "猫粮", "咖啡机", "投影仪", "冲锋衣", "洗碗机", "卷发棒", "保鲜盒", "拖鞋",
                  "电子秤", "围巾"]
    attributes = [("的尺寸是多少", "尺寸为{a}×{b}厘米，以商品页参数为准。"),
                  ("的重量是多少", "净重约{a}00克，含包装约{b}00克。"),
                  ("是什么材质的", "主体采用{m}，做工经过质检。"),
                  ("的产地是哪里", "产地为{p}，由品牌方授权生产。"),
                  ("的功率是多少", "额定功率{a}0瓦，使用220伏家用电压。"),
                  ("的容量有多大", "容量约{a}升，适合{b}人使用。"),
                  ("有哪些颜色可选", "目前有{c}等颜色，具体以商品页库存为准。"),
                  ("适合多大年龄使用", "适合{a}岁以上使用，请在成人看护下使用。"),
                  ("怎么清洗保养", "建议用温水和中性清洁剂清洗，避免暴晒，{b}个月保养一次。"),
                  ("的使用说明在哪里", "说明书在包装盒内，也可以在商品页下载电子版（第{a}页起为注意事项）。"),
                  ("有什么型号区别", "{a}代和{b}代的区别在于续航和外观，核心功能相同。"),
                  ("的续航能用多久", "充满电可以使用约{a}小时，待机约{b}天。")]
    materials = ["304不锈钢", "食品级硅胶", "纯棉", "铝合金", "ABS塑料", "实木", "陶瓷", "羊毛混纺"]
    places = ["浙江宁波", "广东佛山", "江苏苏州", "福建泉州", "山东青岛", "河北保定"]
    colours = ["米白、雾蓝", "深灰、樱粉", "墨绿、燕麦色", "黑色、银色"]
    combos = list(itertools.product(brands, categories, attributes))
    if count > len(combos):
        raise BenchError(f"--filler is at most {len(combos)}")
    rng = random.Random(seed)
    rng.shuffle(combos)
    entries = []
    for number, (brand, category, (asked, answer)) in enumerate(combos[:count]):
        text = answer.format(a=rng.randint(2, 9), b=rng.randint(2, 9), m=rng.choice(materials),
                             p=rng.choice(places), c=rng.choice(colours))
        entries.append(Entry(f"filler-{number}", f"{brand}{category}{asked}？", f"{brand}{category}{text}",
                             (category, brand)))
    return entries


# -- metrics ----------------------------------------------------------------------------------------

Ranking = list[tuple[str, float]]  # (entry id, score), best first


@dataclass
class Evaluation:
    in_scope: int
    out_of_scope: int
    hit1: float
    hit3: float
    mrr: float
    answering: dict[float, dict[str, float]]  # threshold -> right / wrong / unanswered / oos_answered shares
    misses: list[dict] = field(default_factory=list)


def answering_at(questions: list[Question], rankings: list[Ranking], threshold: float) -> dict[str, float]:
    """Knowledge-only answering: the best match answers when its score reaches the threshold (rounds._decide)."""
    right = wrong = unanswered = oos = 0
    for question, ranking in zip(questions, rankings, strict=True):
        answered = ranking[0][0] if ranking and ranking[0][1] >= threshold else None
        if question.expected is None:
            oos += answered is not None
        elif answered is None:
            unanswered += 1
        elif answered == question.expected:
            right += 1
        else:
            wrong += 1
    n_in = sum(q.expected is not None for q in questions) or 1
    n_out = sum(q.expected is None for q in questions) or 1
    return {"right": right / n_in, "wrong": wrong / n_in, "unanswered": unanswered / n_in, "oos_answered": oos / n_out}


def evaluate(questions: list[Question], rankings: list[Ranking], *, threshold: float,
             sweep: tuple[float, ...] = SWEEP) -> Evaluation:
    hit1 = hit3 = rr = 0.0
    misses = []
    for question, ranking in zip(questions, rankings, strict=True):
        ids = [entry_id for entry_id, _ in ranking]
        if question.expected is None:
            if ranking and ranking[0][1] >= threshold:
                misses.append({"text": question.text, "expected": None, "got": ranking[:3]})
            continue
        rank = ids.index(question.expected) + 1 if question.expected in ids else None
        hit1 += rank == 1
        hit3 += rank is not None and rank <= 3
        rr += 1 / rank if rank else 0
        if rank != 1:
            misses.append({"text": question.text, "expected": question.expected, "rank": rank, "got": ranking[:3]})
    n_in = sum(q.expected is not None for q in questions)
    thresholds = sorted({*sweep, threshold})
    return Evaluation(in_scope=n_in, out_of_scope=len(questions) - n_in, hit1=hit1 / n_in, hit3=hit3 / n_in,
                      mrr=rr / n_in, answering={t: answering_at(questions, rankings, t) for t in thresholds},
                      misses=misses)


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def summary_table(rows: list[tuple[str, Evaluation, float]]) -> str:
    """One line per (name, evaluation, threshold): ranking and answering at that threshold, as Markdown."""
    lines = ["| method | hit@1 | hit@3 | MRR | threshold | in-scope right | wrong | not answered "
             "| out-of-scope answered |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, ev, threshold in rows:
        a = ev.answering[threshold]
        lines.append(f"| {name} | {ev.hit1:.3f} | {ev.hit3:.3f} | {ev.mrr:.3f} | {threshold:g} | {pct(a['right'])} | "
                     f"{pct(a['wrong'])} | {pct(a['unanswered'])} | {pct(a['oos_answered'])} |")
    return "\n".join(lines)


def sweep_table(ev: Evaluation) -> str:
    lines = ["| threshold | in-scope right | wrong | not answered | out-of-scope answered |",
             "| --- | --- | --- | --- | --- |"]
    for threshold, a in sorted(ev.answering.items()):
        lines.append(f"| {threshold:g} | {pct(a['right'])} | {pct(a['wrong'])} | {pct(a['unanswered'])} | "
                     f"{pct(a['oos_answered'])} |")
    return "\n".join(lines)


# -- the bench tenant -------------------------------------------------------------------------------


def tenant_exists(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('public.tenants_tenant')").fetchone()[0]:
            return False
        return bool(conn.execute("SELECT 1 FROM tenants_tenant WHERE schema_name = %s", [TENANT]).fetchone())


def prepare_tenant(args) -> dict[str, str]:
    """The bench tenant, migrated; this process's environment pointed at the benchmark's database."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=args.settings, DATABASE_URL=args.database_url,
               REDIS_URL=args.redis_url, BROKER_URL=args.redis_url, LOG_LEVEL="WARNING", DEBUG="false")
    benchkit.ensure_database(args.database_url)
    if args.fresh or not tenant_exists(args.database_url):
        benchkit.drop_tenant(args.database_url)
        benchkit.run_manage(["migrate_schemas", "--shared", "--noinput"], env)
        benchkit.run_manage(["tenants", "create", TENANT, "--name", "Retrieval bench"], env)
    else:  # new migrations since the tenant was made
        benchkit.run_manage(["migrate_schemas", "--noinput"], env)
    os.environ.update(env)
    return env


def load_synonyms_into_tenant(path: Path | None) -> int:
    """Replace the bench tenant's synonym groups with those of `path` (none without it)."""
    from django.core.exceptions import ValidationError

    from kb import synonyms
    from kb.models import Synonym

    Synonym.objects.all().delete()
    groups = json.loads(path.read_text()) if path else []
    for words in groups:
        try:
            synonyms.save_group(words=words)
        except ValidationError as exc:
            raise BenchError(f"{path}: {words}: {exc.messages}") from exc
    return len(groups)


def load_entries_into_tenant(entries: list[Entry]) -> dict[str, str]:
    """Replace the bench tenant's entries with `entries`, through the product's CSV import; returns the stored
    question (lower case) -> entry id, to map search results back to the data set."""
    from django.db import transaction

    from kb import services, tabular
    from kb.models import KnowledgeEntry

    content = tabular.write_csv((e.question, e.answer, ", ".join(e.tags), "TRUE") for e in entries)
    rows = tabular.read_rows(content=content, file_format="csv")
    with transaction.atomic():
        KnowledgeEntry.objects.all().delete()
        services.import_entries(rows=rows)
    return {e.question.lower(): e.id for e in entries}


def vacuum_knowledge_tables(database_url: str) -> float:
    """VACUUM (ANALYZE) the bench tenant's knowledge tables, as autovacuum would on a server that runs it; returns
    the seconds it took. Each run replaces every entry (and its vectors), leaving the last run's rows dead in the
    heap and the full-text GIN index, new ones in the index's pending list, and no statistics: where autovacuum
    is off (this machine's PostgreSQL: conf.d/90-ci.conf) the searches would recheck every dead row of every past
    run (70,000 after seven runs at 10,000 entries: the lexical p95 doubled) and the lexical search's
    common-character step, which reads the statistics, would never run. Speed only: the ranking is the same."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:  # VACUUM cannot run in a transaction
        for table in ("kb_knowledgeentry", "kb_entryembedding"):
            conn.execute(f'VACUUM (ANALYZE) "{TENANT}".{table}')
    return time.perf_counter() - started


# -- methods ----------------------------------------------------------------------------------------


class Lexical:
    """kb.selectors.search_knowledge_many, as conversations/services/answering/rounds.py calls it (one
    statement per round; here a round of one question). The ranking does not depend on the limit (ORDER BY
    score, id), so asking for `depth` results gives the answering path's top-k as its first k."""

    name = "lexical"
    embeddings = "off"  # the search is lexical only when the tenant has no embedding model

    def __init__(self, ids_by_question: dict[str, str]):
        from django.conf import settings

        settings.KB_EMBEDDINGS = self.embeddings  # read on every search (kb.embeddings.providers)
        self.ids_by_question = ids_by_question

    def rank(self, question: str, depth: int) -> Ranking:
        from kb.selectors import search_knowledge_many

        matches = search_knowledge_many([question], limit=depth)[0]
        return [(self.ids_by_question[m.entry.question.lower()], m.score) for m in matches]


class Hybrid(Lexical):
    """The same call with the tenant's embeddings on: after the import, every entry is embedded in this process
    by the embed job's own function (kb.embeddings.sync.embed_entries, the built-in model unless the tenant's
    AI provider names one), then kb.selectors.search_knowledge_many fuses the lexical and vector rankings
    (kb.ranking). The question's embedding is part of each search's latency."""

    name = "hybrid"
    embeddings = "on"

    def __init__(self, ids_by_question: dict[str, str]):
        super().__init__(ids_by_question)
        from kb.embeddings.sync import embed_entries
        from kb.models import KnowledgeEntry

        started = time.perf_counter()
        result = embed_entries(entry_ids=list(KnowledgeEntry.objects.values_list("pk", flat=True)))
        if result.model_id is None:
            raise BenchError("no embedding model: KB_EMBEDDINGS is off or the model failed to load")
        self.model_id, self.embed_seconds = result.model_id, time.perf_counter() - started


METHODS = {"lexical": Lexical, "hybrid": Hybrid}


def run_questions(method, questions: list[Question], depth: int) -> tuple[list[Ranking], list[float]]:
    for question in questions[:5]:  # warm-up: jieba's dictionary, the connection, PostgreSQL's caches
        method.rank(question.text, depth)
    rankings, latencies = [], []
    for question in questions:
        started = time.perf_counter()
        rankings.append(method.rank(question.text, depth))
        latencies.append(time.perf_counter() - started)
    return rankings, latencies


def latency_rounds(questions: list[Question], depth: int) -> dict[str, list[float]]:
    """`--latency`: each question as a round of one, timed stage by stage as kb.selectors.search_knowledge_many
    runs them (variants: synonyms and homophone typos; the question's embedding, wall and this process's CPU;
    the lexical search of every variant; the vector search and fusion), plus the whole call. The staged result is
    checked against the call's, so the stages are the product's own."""
    from kb import ranking
    from kb.selectors import MAX_LIMIT, lexical_search_many, question_variants, search_knowledge_many

    limit = max(1, min(depth, MAX_LIMIT))
    stages: dict[str, list[float]] = {name: [] for name in
                                      ("total", "synonyms", "embed", "embed_cpu", "lexical", "vectors_fuse")}
    for question in [*questions[:5], *questions]:  # the first five warm up (dropped below)
        t0 = time.perf_counter()
        variants = question_variants([question.text])
        t1, c1 = time.perf_counter(), time.process_time()
        embedded = ranking.embed_questions(variants)
        t2, c2 = time.perf_counter(), time.process_time()
        found = iter(lexical_search_many(variants[0], limit=limit))
        lexical = [ranking.best_of_variants([next(found) for _ in variants[0]], limit=limit)]
        t3 = time.perf_counter()
        staged = ranking.fuse(lexical, embedded, limit=limit)[0]
        t4 = time.perf_counter()
        whole = search_knowledge_many([question.text], limit=depth)[0]
        t5 = time.perf_counter()
        if [(m.entry.pk, m.score) for m in staged] != [(m.entry.pk, m.score) for m in whole]:
            raise BenchError(f"the staged search differs from search_knowledge_many for {question.text!r}")
        for name, value in (("synonyms", t1 - t0), ("embed", t2 - t1), ("embed_cpu", c2 - c1),
                            ("lexical", t3 - t2), ("vectors_fuse", t4 - t3), ("total", t5 - t4)):
            stages[name].append(value)
    return {name: values[5:] for name, values in stages.items()}


def latency_table(stages: dict[str, list[float]]) -> str:
    names = {"total": "hybrid search, one call (`search_knowledge_many([question])`)",
             "synonyms": "variants (synonym groups, homophone typos)", "embed": "embed the question's variants (wall)",
             "embed_cpu": "embed the question's variants (CPU of this process)",
             "lexical": "lexical search of the variants", "vectors_fuse": "vector search and fusion"}
    lines = ["| stage | p50 | p95 | max |", "| --- | --- | --- | --- |"]
    for name, label in names.items():
        values = stages[name]
        lines.append(f"| {label} | {benchkit.ms(percentile(values, 50))} | {benchkit.ms(percentile(values, 95))} | "
                     f"{benchkit.ms(max(values))} |")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------------


def default_answering_settings() -> tuple[float, int]:
    """What a new tenant's DeskSettings start with: the knowledge-only threshold and top-k."""
    from conversations.models import DeskSettings

    return (DeskSettings._meta.get_field("knowledge_min_score").default,
            DeskSettings._meta.get_field("knowledge_top_k").default)


def p50_p95(values: list[float]) -> str:
    return f"{benchkit.ms(percentile(values, 50))} / {benchkit.ms(percentile(values, 95))}"


def summary(args, method_name: str, ev: Evaluation, latencies: list[float], threshold: float, kb_size: int,
            seconds: dict[str, float], stages: dict[str, list[float]] | None = None) -> str:
    """What `--record` keeps of a run: the one-row results table at `threshold` and one line of sizes and
    latency (with `stages`, their p50 / p95 too). The threshold sweep and the stage table go to stdout only."""
    lat = f"p50 {benchkit.ms(percentile(latencies, 50))}, p95 {benchkit.ms(percentile(latencies, 95))}, " \
          f"max {benchkit.ms(max(latencies))}"
    synonyms = f", {seconds['synonyms']:g} synonym groups from `{args.synonyms}`" if args.synonyms else ""
    embedded = (f"; embedding every entry in process ({seconds['model']}, load included) {seconds['embed']:.1f} s"
                if "embed" in seconds else "")
    staged = ""
    if stages:
        parts = {"embed wall": "embed", "embed CPU": "embed_cpu", "lexical": "lexical",
                 "vectors + fusion": "vectors_fuse", "one call": "total"}
        staged = (" Stages p50 / p95 (each question a round of one): "
                  + ", ".join(f"{label} {p50_p95(stages[name])}" for label, name in parts.items())
                  + f"; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}.")
    return "\n".join([
        summary_table([(method_name, ev, threshold)]),
        "",
        f"{kb_size} entries ({args.filler} filler), {ev.in_scope} in-scope and {ev.out_of_scope} out-of-scope "
        f"questions{synonyms}. Search per question (one call, in process, wall): {lat}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end. Import {seconds['import']:.1f} s"
        f"{embedded}.{staged}",
    ])


def report(args, method_name: str, ev: Evaluation, latencies: list[float], threshold: float, kb_size: int,
           seconds: dict[str, float], stages: dict[str, list[float]] | None = None) -> str:
    """The run on stdout: the summary, the threshold sweep and (with `--latency`) the stage table."""
    text = (summary(args, method_name, ev, latencies, threshold, kb_size, seconds, stages)
            + "\n\nKnowledge-only answering at other thresholds:\n\n" + sweep_table(ev))
    if stages:
        text += (f"\n\nEach question as a round of one, stage by stage (top {args.depth}; load average "
                 f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):\n\n" + latency_table(stages))
    return text


def record_entry(argv: list[str], summary_text: str) -> tuple[str, str]:
    """(key, text) of this run's entry in docs/BENCHMARKS.md: the title line, the machine line, the summary."""
    command, key = benchkit.command_line(argv, script="retrieval.py", unkeyed=("--json",),
                                         unkeyed_flags=("--show-misses", "--fresh"))
    return key, "\n".join([benchkit.entry_title(command), f"{benchkit.machine_line()}; {benchkit.git_state()}.",
                           "", summary_text])


def main(argv: list[str]) -> int:
    parser = benchkit.argument_parser(__doc__)
    parser.add_argument("--method", choices=sorted(METHODS), default="lexical")
    parser.add_argument("--threshold", type=float, default=None,
                        help="knowledge-only threshold (default: a new tenant's knowledge_min_score)")
    parser.add_argument("--depth", type=int, default=10, help="results per question (MRR@depth)")
    parser.add_argument("--filler", type=int, default=0, help="generated entries added to the knowledge base")
    parser.add_argument("--synonyms", type=Path, help="the bench tenant's synonym groups (JSON list of lists)")
    parser.add_argument("--kb", type=Path, default=KB_PATH)
    parser.add_argument("--questions", type=Path, default=QUESTIONS_PATH)
    parser.add_argument("--json", type=Path, help="write every number and ranking here")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the bench tenant first")
    parser.add_argument("--settings", default="config.settings.local")
    parser.add_argument("--database-url", default=f"postgresql://postgres@127.0.0.1:5432/{DATABASE}")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{REDIS_DB}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show-misses", action="store_true", help="print every question not ranked first")
    parser.add_argument("--record", action="store_true", help="write the results into docs/BENCHMARKS.md")
    parser.add_argument("--latency", action="store_true",
                        help="also time each question's search stage by stage (embedding CPU reported apart)")
    args = parser.parse_args(argv)
    try:
        for what, url in {"the database": args.database_url, "Redis": args.redis_url}.items():
            benchkit.check_loopback(url, what)
        entries = load_kb(args.kb)
        questions = load_questions(entries, args.questions)
        prepare_tenant(args)
        import django

        django.setup()
        from django_tenants.utils import schema_context

        threshold, _top_k = default_answering_settings()
        threshold = args.threshold if args.threshold is not None else threshold
        all_entries = entries + filler_entries(args.filler, args.seed)
        with schema_context(TENANT):
            started = time.perf_counter()
            ids_by_question = load_entries_into_tenant(all_entries)
            seconds = {"import": time.perf_counter() - started,
                       "synonyms": load_synonyms_into_tenant(args.synonyms)}
            method = METHODS[args.method](ids_by_question)
            if hasattr(method, "embed_seconds"):
                seconds.update(embed=method.embed_seconds, model=method.model_id)
            seconds["vacuum"] = vacuum_knowledge_tables(args.database_url)
            rankings, latencies = run_questions(method, questions, args.depth)
            stages = latency_rounds(questions, args.depth) if args.latency else None
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ev = evaluate(questions, rankings, threshold=threshold)
    text = report(args, method.name, ev, latencies, threshold, len(all_entries), seconds, stages)
    print(text)
    if args.show_misses:
        print("\nNot ranked first (and out-of-scope answered):")
        for miss in ev.misses:
            got = ", ".join(f"{entry_id} {score:.2f}" for entry_id, score in miss["got"])
            print(f"  {miss['text']!r}: expected {miss['expected']} (rank {miss.get('rank')}); got {got}")
    if args.json:
        args.json.write_text(json.dumps({
            "method": method.name, "threshold": threshold, "entries": len(all_entries), "filler": args.filler,
            "in_scope": ev.in_scope, "out_of_scope": ev.out_of_scope, "hit1": ev.hit1, "hit3": ev.hit3,
            "mrr": ev.mrr, "answering": {str(t): a for t, a in ev.answering.items()},
            "latency_ms": {"p50": percentile(latencies, 50) * 1000, "p95": percentile(latencies, 95) * 1000,
                           "max": max(latencies) * 1000},
            "import_seconds": seconds["import"], "misses": ev.misses,
            "rankings": [{"text": q.text, "expected": q.expected, "ranking": r}
                         for q, r in zip(questions, rankings, strict=True)],
        }, ensure_ascii=False, indent=1))
    if args.record:
        key, entry = record_entry(argv, summary(args, method.name, ev, latencies, threshold, len(all_entries),
                                                seconds, stages))
        benchkit.record(key, entry, script="retrieval.py", title="## Retrieval quality")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
