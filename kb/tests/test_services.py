"""Entries and file imports: every row validated, all or nothing; exports that import back."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from openpyxl import load_workbook

from kb import services, tabular
from kb.models import KnowledgeEntry, KnowledgeImport
from kb.services import EntryInvalid, ImportRejected
from kb.tabular import FileRejected, ImportRow
from testing.factories import KnowledgeEntryFactory, KnowledgeImportFactory
from testing.spreadsheets import GOOD_ROWS, HEADER, csv_bytes, xlsx_bytes

pytestmark = pytest.mark.django_db


def rows_in(schema: str = "alpha") -> list[tuple]:
    with schema_context(schema):
        return list(KnowledgeEntry.objects.order_by("question").values_list("question", "answer", "tags", "enabled"))


def import_bytes(content: bytes, filename: str, schema: str = "alpha") -> services.ImportOutcome:
    with schema_context(schema):
        return services.import_file(content=content, filename=filename)


EXPECTED_GOOD = sorted([
    ("如何申请退货？", "签收后7天内可在订单页申请退货。", ["退货", "售后"], True),
    ("怎么开发票？", "在订单详情页点击“申请开票”。", ["发票", "开票"], True),
    ("门店营业时间", "每天10:00-21:30。", [], True),
    ("Do you ship to Hong Kong?", "Yes, by SF Express.", ["shipping", "overseas"], False),
])


# --- entries -----------------------------------------------------------------------------


def test_create_entry_cleans_and_indexes(tenant_a):
    with schema_context("alpha"):
        entry = KnowledgeEntryFactory(question="  如何   申请退货？ ", answer="签收后七天内。\n\n在订单页申请。 ",
                                      tags=["退货", " 售后 ", "退货", ""])
    assert (entry.question, entry.answer, entry.tags) == ("如何 申请退货？", "签收后七天内。\n\n在订单页申请。",
                                                          ["退货", "售后"])
    assert entry.question_terms.split() == ["申请", "退货", "退货", "售后"]
    assert entry.answer_chars.split() == ["签", "收", "七", "天", "订", "单", "申"]  # 请 is a stop word


@pytest.mark.parametrize(("fields", "errors"), [
    ({"question": " ", "answer": "a"}, {"question"}),
    ({"question": "q", "answer": ""}, {"answer"}),
    ({"question": "问" * 301, "answer": "a"}, {"question"}),
    ({"question": "q", "answer": "答" * 5001}, {"answer"}),
    ({"question": "q", "answer": "a", "tags": [f"t{n}" for n in range(21)]}, {"tags"}),
    ({"question": "q", "answer": "a", "tags": ["标" * 33]}, {"tags"}),
])
def test_create_entry_refuses_invalid_fields(tenant_a, fields, errors):
    with schema_context("alpha"), pytest.raises(EntryInvalid) as raised:
        services.create_entry(**fields)
    assert set(raised.value.errors) == errors
    assert rows_in() == []


def test_the_question_is_unique_regardless_of_case(tenant_a):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="How to return?", answer="a")
    with schema_context("alpha"), pytest.raises(EntryInvalid) as raised:
        services.create_entry(question="how TO return?", answer="b")
    assert list(raised.value.errors) == ["question"]
    assert rows_in() == [("How to return?", "a", [], True)]


# --- import ------------------------------------------------------------------------------


def test_good_csv_imports_every_row(tenant_a):
    outcome = import_bytes(csv_bytes([HEADER, *GOOD_ROWS]), "faq.csv")
    assert outcome.result == services.ImportResult(created=4, updated=0) and outcome.errors is None
    assert rows_in() == EXPECTED_GOOD


def test_good_xlsx_imports_every_row_with_native_cells(tenant_a):
    rows = [[*row[:3], {"是": True, "TRUE": True, "": None, "no": False}[row[3]]] for row in GOOD_ROWS]
    rows.append([12345, "数字问题", None, 1])  # Excel keeps numbers as numbers
    outcome = import_bytes(xlsx_bytes([HEADER, *rows]), "faq.xlsx")
    assert outcome.result == services.ImportResult(created=5, updated=0)
    assert rows_in() == sorted([*EXPECTED_GOOD, ("12345", "数字问题", [], True)])


def test_gbk_csv_with_chinese_headers(tenant_a):
    content = csv_bytes([["问题", "答案", "标签", "启用"], *GOOD_ROWS], encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    assert import_bytes(content, "FAQ.CSV").result.created == 4
    assert rows_in() == EXPECTED_GOOD


def test_errors_on_rows_3_and_7_are_reported_exactly_and_nothing_is_saved(tenant_a):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="已有问题", answer="旧答案")
    data = [[f"问题 {n}", f"答案 {n}", "标签", "是"] for n in range(2, 10)]  # spreadsheet rows 2..9
    data[3 - 2][1] = ""  # row 3: no answer
    data[7 - 2][3] = "maybe"  # row 7: not a yes/no
    data[5 - 2][0] = "已有问题"  # row 5 updates an existing entry: not an error
    outcome = import_bytes(csv_bytes([HEADER, *data]), "faq.csv")
    assert outcome.result is None
    assert [(e.row, e.field) for e in outcome.errors] == [(3, "answer"), (7, "enabled")]
    assert rows_in() == [("已有问题", "旧答案", [], True)]


def test_every_problem_of_the_file_is_listed(tenant_a):
    rows = [ImportRow(2, {"question": "", "answer": ""}),
            ImportRow(3, {"question": "Q", "answer": "a"}),
            ImportRow(4, {"question": "q", "answer": "another"}),  # same question as row 3
            ImportRow(5, {"question": "tags", "answer": "a", "tags": "x, " + "标" * 33}),
            ImportRow(9, {"question": "ok", "answer": "fine"})]
    with schema_context("alpha"), pytest.raises(ImportRejected) as raised:
        services.import_entries(rows=rows)
    assert [(e.row, e.field) for e in raised.value.errors] == [(2, "question"), (2, "answer"), (4, "question"),
                                                               (5, "tags")]
    assert "3" in raised.value.errors[2].message  # points at the first row with that question
    assert rows_in() == []


def test_a_question_that_exists_updates_the_entry(tenant_a):
    with schema_context("alpha"):
        entry = KnowledgeEntryFactory(question="怎么开发票？", answer="旧答案", tags=["旧"], enabled=False)
    outcome = import_bytes(csv_bytes([HEADER, *GOOD_ROWS]), "faq.csv")
    assert outcome.result == services.ImportResult(created=3, updated=1)
    with schema_context("alpha"):
        entry.refresh_from_db()
        assert (entry.answer, entry.tags, entry.enabled) == ("在订单详情页点击“申请开票”。", ["发票", "开票"], True)
        assert "开票" in entry.question_terms.split()
    assert len(rows_in()) == 4


def test_a_large_import_leaves_the_table_analysed_for_the_lexical_search(tenant_a):
    # Every row shares a character no other test writes: only statistics taken after this import know it.
    rows = [ImportRow(number=n + 2, values={"question": f"鑫{n}号仓库怎么走", "answer": "请看地图。"})
            for n in range(services.ANALYZE_AFTER_ROWS)]
    with schema_context("alpha"):
        services.import_entries(rows=rows)
        with connection.cursor() as cursor:
            cursor.execute("SELECT most_common_elems::text::text[] FROM pg_stats WHERE schemaname = 'alpha' "
                           "AND tablename = 'kb_knowledgeentry' AND attname = 'search_vector'")
            statistics = cursor.fetchone()  # None: the table was never analysed
    assert statistics is not None and "鑫" in statistics[0]


@pytest.mark.parametrize(("content", "filename", "message"), [
    (b"question,answer\n", "faq.txt", ".csv or .xlsx"),
    (b"", "faq.csv", "empty"),
    (b"foo,bar\nx,y\n", "faq.csv", "missing: question, answer"),
    (b"question,answer\n,\n", "faq.csv", "no entries"),
    (b"\xff\xfe\x00q\x00", "faq.csv", "UTF-8 nor GBK"),
    (b"PK\x03\x04 not a zip", "faq.xlsx", "not a valid .xlsx"),
])
def test_unreadable_files_are_refused_as_a_whole(tenant_a, content, filename, message, settings):
    settings.LANGUAGE_CODE = "en"
    with pytest.raises(FileRejected, match=message):
        import_bytes(content, filename)
    assert rows_in() == []


# --- export ------------------------------------------------------------------------------


def test_export_round_trip_through_csv_and_xlsx(tenant_a):
    import_bytes(csv_bytes([HEADER, *GOOD_ROWS, ["=HYPERLINK(\"http://x\")", "-1 元运费", "a", "0"]]), "faq.csv")
    before = rows_in()
    for file_format in ("csv", "xlsx"):
        with schema_context("alpha"):
            content = services.export_entries(file_format=file_format)
            KnowledgeEntry.objects.all().delete()
        assert import_bytes(content, f"export.{file_format}").result.created == 5
        assert rows_in() == before


def test_exported_csv_opens_in_excel_without_formulas(tenant_a):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="=1+1", answer="@SUM(A1)", tags=["退货", "售后"])
        content = services.export_entries(file_format="csv")
        workbook = load_workbook(io.BytesIO(services.export_entries(file_format="xlsx")))
    assert content.startswith("\ufeff".encode())  # BOM: Excel reads UTF-8
    assert content.decode("utf-8-sig").splitlines() == ["question,answer,tags,enabled", "'=1+1,'@SUM(A1),"
                                                        "\"退货, 售后\",TRUE"]
    cell = workbook.active["A2"]
    assert (cell.value, cell.data_type) == ("=1+1", "s")


def test_large_files_become_a_background_job(tenant_a, django_capture_on_commit_callbacks):
    rows = [[f"问题 {n}", f"答案 {n}"] for n in range(services.ASYNC_IMPORT_ROWS + 1)]
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = import_bytes(csv_bytes([["question", "answer"], *rows]), "big.csv")
    assert outcome.job is not None and outcome.result is None
    with schema_context("alpha"):
        job = KnowledgeImport.objects.get()
    assert (job.status, job.total_rows, job.file_format) == ("pending", 501, "csv")
    assert len(callbacks) == 1  # the job is sent once the row is committed
    assert rows_in() == []


def test_the_worker_side_imports_and_records_the_outcome(tenant_a):
    content = csv_bytes([HEADER, *GOOD_ROWS])
    with schema_context("alpha"):
        job = KnowledgeImportFactory(content=content, total_rows=4)
        services.run_import_job(job_id=str(job.id))
        job.refresh_from_db()
        assert (job.status, job.created_count, job.updated_count, job.errors) == ("succeeded", 4, 0, [])
        assert bytes(job.content) == b""
        services.run_import_job(job_id=str(job.id))  # redelivered: nothing happens twice
    assert rows_in() == EXPECTED_GOOD


def test_the_worker_side_records_row_errors_and_saves_nothing(tenant_a):
    content = csv_bytes([HEADER, GOOD_ROWS[0], ["", "答案"]])
    with schema_context("alpha"):
        job = KnowledgeImportFactory(content=content, total_rows=2)
        services.run_import_job(job_id=str(job.id))
        job.refresh_from_db()
    assert job.status == "failed" and [(e["row"], e["field"]) for e in job.errors] == [(3, "question")]
    assert rows_in() == []


def test_tabular_reads_rows_by_spreadsheet_number():
    content = csv_bytes([["问题", "答案", "备注"], ["a", "b", "x"], ["", "", ""], ["c", "d", "y"]])
    rows = tabular.read_rows(content=content, file_format="csv")
    assert rows == [ImportRow(2, {"question": "a", "answer": "b"}), ImportRow(4, {"question": "c", "answer": "d"})]
