"""A large import run by a real Dramatiq worker: the admin's progress endpoint climbs to 100%
and every row is stored in the uploading tenant's schema."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from kb.models import KnowledgeEntry, KnowledgeImport
from kb.progress import progress_key
from testing.accounts import staff_client
from testing.broker import flush_test_broker
from testing.spreadsheets import HEADER, csv_bytes, numbered_rows
from testing.waiting import wait_until

pytestmark = pytest.mark.live

ROWS = 1500
BASE = "/t/alpha/admin/kb/knowledgeentry/"


@pytest.fixture
def clean_kb(committed_db, redis_client):
    flush_test_broker()
    yield
    flush_test_broker()
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            for job_id in KnowledgeImport.objects.values_list("pk", flat=True):
                redis_client.delete(progress_key(str(job_id), schema=schema))
            KnowledgeImport.objects.all().delete()
            KnowledgeEntry.objects.all().delete()
            get_user_model().objects.filter(username__startswith="kb-").delete()


def test_a_large_import_runs_in_the_worker_with_progress(clean_kb, start_worker, redis_client):
    client = staff_client("alpha")
    content = csv_bytes([HEADER, *numbered_rows(ROWS)])
    response = client.post(BASE + "import/", {"file": SimpleUploadedFile("big.csv", content)})
    with schema_context("alpha"):
        job = KnowledgeImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{BASE}import/{job.pk}/"

    worker = start_worker("kb")
    seen: list[int] = []

    def finished():
        progress = client.get(f"{BASE}import/{job.pk}/progress/").json()
        seen.append(progress["percent"])
        return progress if progress["status"] != "pending" else None

    progress = wait_until(finished, timeout=60, interval=0.1, message=lambda: f"the import\n{worker.output()}")
    assert progress["status"] == "succeeded", progress
    assert (progress["percent"], progress["done"], progress["created"], progress["updated"]) == (100, ROWS, ROWS, 0)
    assert seen == sorted(seen)  # the bar never goes back
    with schema_context("alpha"):
        assert KnowledgeEntry.objects.count() == ROWS
        assert KnowledgeEntry.objects.filter(question="批量问题 1499 怎么办？").exists()
    with schema_context("beta"):
        assert KnowledgeEntry.objects.count() == 0
    stored = json.loads(redis_client.get(f"alpha:kb:import:{job.pk}"))
    assert stored == {"phase": "succeeded", "done": ROWS, "total": ROWS}
