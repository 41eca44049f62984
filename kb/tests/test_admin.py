"""The knowledge-base admin under /t/<tenant>/admin/: pages, import with per-row errors, export,
"test a question", and the import progress endpoint, which is scoped to its tenant."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_tenants.utils import schema_context

from kb import services
from kb.models import KnowledgeEntry, KnowledgeImport
from kb.progress import store_progress
from testing.accounts import staff_client
from testing.factories import KnowledgeEntryFactory, KnowledgeImportFactory
from testing.spreadsheets import GOOD_ROWS, HEADER, csv_bytes, xlsx_bytes

pytestmark = pytest.mark.django_db

BASE = "/t/alpha/admin/kb/knowledgeentry/"
PAGES = ["", "add/", "import/", "try/?q=退货", "export/csv/", "export/xlsx/"]


def upload(client: Client, content: bytes, name: str, base: str = BASE):
    return client.post(base + "import/", {"file": SimpleUploadedFile(name, content)})


def entry_count(schema: str = "alpha") -> int:
    with schema_context(schema):
        return KnowledgeEntry.objects.count()


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_for_staff(admin_alpha, page):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="如何申请退货？", answer="七天内可以退货。", tags=["退货"])
    response = admin_alpha.get(BASE + page)
    assert response.status_code == 200


@pytest.mark.parametrize("page", [*PAGES, f"import/{uuid.uuid4()}/progress/"])
def test_pages_redirect_anonymous_users_to_the_login(tenant_a, page):
    response = Client().get(BASE + page)
    assert response.status_code == 302 and "/t/alpha/admin/login/" in response["Location"]


@pytest.mark.parametrize("page", ["import/", "try/?q=x", "export/csv/", f"import/{uuid.uuid4()}/progress/"])
def test_staff_without_knowledge_permissions_are_forbidden(tenant_a, page):
    client = staff_client("alpha", superuser=False)
    assert client.get(BASE + page).status_code == 403


def test_changelist_shows_the_tools_and_filters_by_tag(admin_alpha):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="如何申请退货？", answer="七天内可以退货。", tags=["退货"])
        KnowledgeEntryFactory(question="怎么开发票？", answer="订单页申请。", tags=["发票"])
    page = admin_alpha.get(BASE).text
    for link in ("import/", "export/csv/", "export/xlsx/", "try/"):
        assert BASE + link in page
    filtered = admin_alpha.get(BASE + "?tag=发票").text
    assert "怎么开发票？" in filtered and "如何申请退货？" not in filtered
    searched = admin_alpha.get(BASE + "?q=退货").text
    assert "如何申请退货？" in searched and "怎么开发票？" not in searched


def test_add_and_edit_through_the_form_keep_the_index(admin_alpha):
    form = {"question": "会员积分怎么用？", "answer": "100积分抵1元。", "tags": "积分，会员", "enabled": "on"}
    assert admin_alpha.post(BASE + "add/", form).status_code == 302
    with schema_context("alpha"):
        entry = KnowledgeEntry.objects.get()
    assert entry.tags == ["积分", "会员"] and "积分" in entry.question_terms.split()
    duplicate = admin_alpha.post(BASE + "add/", {**form, "question": "会员积分怎么用？ "})
    assert duplicate.status_code == 200 and entry_count() == 1
    assert admin_alpha.post(BASE + f"{entry.pk}/change/", {**form, "question": "积分怎么抵扣？"}).status_code == 302
    with schema_context("alpha"):
        entry.refresh_from_db()
    assert "抵扣" in entry.question_terms.split()


def test_enable_and_disable_actions(admin_alpha):
    with schema_context("alpha"):
        entry = KnowledgeEntryFactory(question="q1", answer="a")
    response = admin_alpha.post(BASE, {"action": "disable_entries", "_selected_action": [entry.pk]})
    assert response.status_code == 302
    with schema_context("alpha"):
        assert KnowledgeEntry.objects.get().enabled is False
    admin_alpha.post(BASE, {"action": "enable_entries", "_selected_action": [entry.pk]})
    with schema_context("alpha"):
        assert KnowledgeEntry.objects.get().enabled is True


def test_import_csv_and_xlsx_from_the_admin(admin_alpha):
    response = upload(admin_alpha, csv_bytes([HEADER, *GOOD_ROWS]), "faq.csv")
    assert response.status_code == 302 and response["Location"].endswith(BASE)
    assert entry_count() == 4
    response = upload(admin_alpha, xlsx_bytes([HEADER, ["新问题", "新答案", "", ""]]), "more.xlsx")
    assert response.status_code == 302 and entry_count() == 5


def test_import_lists_row_errors_and_saves_nothing(admin_alpha):
    data = [[f"问题 {n}", f"答案 {n}", "", ""] for n in range(2, 10)]
    data[1][0] = ""
    data[5][3] = "maybe"
    response = upload(admin_alpha, csv_bytes([HEADER, *data]), "faq.csv")
    assert response.status_code == 200
    assert [row for row in (3, 7) if f'data-row="{row}"' in response.text] == [3, 7]
    assert response.text.count('class="import-error"') == 2
    assert entry_count() == 0


def test_import_refuses_an_unreadable_file(admin_alpha):
    response = upload(admin_alpha, b"not a spreadsheet", "faq.pdf")
    assert response.status_code == 200 and "errorlist" in response.text
    assert entry_count() == 0


def test_export_downloads_both_formats(admin_alpha):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="如何申请退货？", answer="七天内可以退货。", tags=["退货", "售后"])
    csv_response = admin_alpha.get(BASE + "export/csv/")
    assert csv_response["Content-Type"].startswith("text/csv")
    assert 'filename="knowledge-alpha-' in csv_response["Content-Disposition"]
    assert "如何申请退货？" in csv_response.content.decode("utf-8-sig")
    xlsx_response = admin_alpha.get(BASE + "export/xlsx/")
    assert xlsx_response.content.startswith(b"PK")
    assert admin_alpha.get(BASE + "export/pdf/").status_code == 404


def test_try_a_question_shows_the_ranked_entries_with_scores(admin_alpha):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="如何申请退货？", answer="签收后7天内，尺码不合适可以退货。", tags=["退货"])
        KnowledgeEntryFactory(question="怎么开发票？", answer="订单页申请开票。", tags=["发票"])
        KnowledgeEntryFactory(question="退货运费谁出？", answer="质量问题我们承担。", enabled=False)
    page = admin_alpha.get(BASE + "try/", {"q": "买的衣服不合适能退吗"}).text
    assert 'id="try-results"' in page and "如何申请退货？" in page
    assert "怎么开发票？" not in page and "退货运费谁出？" not in page


def test_a_large_upload_redirects_to_its_progress_page(admin_alpha, django_capture_on_commit_callbacks):
    rows = [[f"问题 {n}", f"答案 {n}"] for n in range(services.ASYNC_IMPORT_ROWS + 1)]
    with django_capture_on_commit_callbacks():
        response = upload(admin_alpha, csv_bytes([["question", "answer"], *rows]), "big.csv")
    with schema_context("alpha"):
        job = KnowledgeImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{BASE}import/{job.pk}/"
    page = admin_alpha.get(response["Location"])
    assert page.status_code == 200 and f"{BASE}import/{job.pk}/progress/" in page.text
    progress = admin_alpha.get(f"{BASE}import/{job.pk}/progress/").json()
    assert progress["status"] == "pending" and progress["total"] == 501 and progress["percent"] == 0


def test_the_progress_endpoint_of_alpha_cannot_read_betas_job(admin_alpha, admin_beta):
    with schema_context("beta"):
        job = KnowledgeImportFactory(filename="beta.csv", total_rows=900)
        store_progress(str(job.id), phase="saving", done=450, total=900)
    beta_url = f"/t/beta/admin/kb/knowledgeentry/import/{job.pk}/progress/"
    assert admin_beta.get(beta_url).json()["percent"] == 50  # beta itself sees it

    alpha_url = f"{BASE}import/{job.pk}/progress/"
    response = admin_alpha.get(alpha_url)
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert admin_alpha.get(f"{BASE}import/{job.pk}/").status_code == 404
    # alpha's session is unknown to beta's admin
    assert admin_alpha.get(beta_url).status_code == 302


def test_the_admin_speaks_chinese_by_default_and_english_on_request(admin_alpha):
    assert "导入知识条目" in admin_alpha.get(BASE + "import/").text
    assert "Import knowledge entries" in admin_alpha.get(BASE + "import/", HTTP_ACCEPT_LANGUAGE="en").text
    data = [HEADER, ["", "答案", "", ""]]
    assert "问题不能为空。" in upload(admin_alpha, csv_bytes(data), "faq.csv").text


def test_the_import_history_lists_jobs_with_a_link_to_their_progress(admin_alpha):
    with schema_context("alpha"):
        job = KnowledgeImportFactory(filename="big.csv", total_rows=900)
    page = admin_alpha.get("/t/alpha/admin/kb/knowledgeimport/")
    assert page.status_code == 200 and f"{BASE}import/{job.pk}/" in page.text
    assert admin_alpha.get("/t/alpha/admin/kb/knowledgeimport/add/").status_code == 403
