"""Tenant admin of the knowledge base: entries, CSV/XLSX import and export, "test a question", synonym groups."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import OuterRef
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from kb import origins, services, synonyms, tabular
from kb.embeddings.status import embedding_status
from kb.embeddings.sync import enqueue_embedding
from kb.models import EntryEmbedding, KnowledgeEntry, KnowledgeImport, Synonym
from kb.selectors import MAX_LIMIT, access_import, import_progress, popular_tags, search_knowledge

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class KnowledgeEntryForm(forms.ModelForm):
    tags = forms.CharField(label=gettext_lazy("tags"), required=False,
                           help_text=gettext_lazy("Separated by commas (, or ，)."))

    class Meta:
        model = KnowledgeEntry
        fields = ["question", "answer", "tags", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A new entry's tags may come as text in the add form's address (?tags=退款,到账, kb.origins)
        tags = self.initial.get("tags") if self.instance.pk is None else None
        self.initial["tags"] = tags if isinstance(tags, str) else ", ".join(self.instance.tags or [])

    def clean_tags(self):
        return services.parse_tags(self.cleaned_data.get("tags"))

    def clean(self):
        cleaned = super().clean()
        _fields, errors = services.clean_entry_fields(
            question=cleaned.get("question", ""), answer=cleaned.get("answer", ""), tags=cleaned.get("tags", []),
            enabled=cleaned.get("enabled", False))
        for field, message in errors.items():
            if field not in self.errors:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


class TagFilter(admin.SimpleListFilter):
    title = gettext_lazy("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(tag, tag) for tag in popular_tags()]

    def queryset(self, request, queryset):
        return queryset.filter(tags__contains=[self.value()]) if self.value() else queryset


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV or XLSX file"),
                           widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}))


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(admin.ModelAdmin):
    form = KnowledgeEntryForm
    change_list_template = "admin/kb/knowledgeentry/change_list.html"
    list_display = ["question", "short_answer", "tag_list", "enabled", "used", "rated", "updated_at",
                    "embedded_with"]
    list_filter = ["enabled", TagFilter]
    search_fields = ["question", "answer"]
    readonly_fields = ["created_at", "updated_at", "used", "rated"]
    actions = ["enable_entries", "disable_entries", "reembed_entries"]
    list_per_page = 50

    @admin.display(description=gettext_lazy("answer"))
    def short_answer(self, obj):
        return obj.answer if len(obj.answer) <= 60 else obj.answer[:60] + "…"

    @admin.display(description=gettext_lazy("tags"))
    def tag_list(self, obj):
        return ", ".join(obj.tags)

    def get_queryset(self, request):
        # The models holding an entry's full vector, in the page's one query rather than one per row.
        models = EntryEmbedding.objects.filter(entry=OuterRef("pk"), kind=EntryEmbedding.Kind.FULL).order_by(
            "model_id").values("model_id")
        return super().get_queryset(request).select_related("stats").annotate(
            embedding_models=ArraySubquery(models))

    @admin.display(description=gettext_lazy("answers"), ordering="stats__used_count")
    def used(self, obj):
        """How many answers quoted the entry or rested on it (kb.stats)."""
        stats = getattr(obj, "stats", None)
        return stats.used_count if stats else 0

    @admin.display(description=gettext_lazy("ratings 👍 / 👎"), ordering="stats__unhelpful_count")
    def rated(self, obj):
        stats = getattr(obj, "stats", None)
        return f"{stats.helpful_count} / {stats.unhelpful_count}" if stats else "0 / 0"

    @admin.display(description=gettext_lazy("vectors"))
    def embedded_with(self, obj):
        models = getattr(obj, "embedding_models", None)
        if models is None:
            models = list(obj.embeddings.filter(kind=EntryEmbedding.Kind.FULL).values_list("model_id", flat=True))
        if not models:
            return _("not embedded yet")
        return _("embedded with %(models)s") % {"models": ", ".join(models)}

    def get_search_results(self, request, queryset, search_term):
        """Text search on question and answer, or an exact tag."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= queryset.filter(tags__contains=[search_term.strip()])
        return found, may_have_duplicates

    # --- writes go through kb.services (it keeps the search index in step) ---

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in ("question", "answer", "tags", "enabled")}
        if change:
            services.update_entry(entry=obj, **fields)
        else:
            entry = services.create_entry(**fields)
            obj.pk, obj.created_at, obj.updated_at = entry.pk, entry.created_at, entry.updated_at
            # the form posts to its own address, so the link's ?origin= is still there (kb.origins)
            origins.entry_created(entry=entry, origin=request.GET.get("origin", ""))

    def delete_model(self, request, obj):
        services.delete_entries(entry_ids=[obj.pk])

    def delete_queryset(self, request, queryset):
        services.delete_entries(entry_ids=list(queryset.values_list("pk", flat=True)))

    @admin.action(description=gettext_lazy("Enable selected entries"), permissions=["change"])
    def enable_entries(self, request, queryset):
        count = services.set_entries_enabled(entry_ids=list(queryset.values_list("pk", flat=True)), enabled=True)
        self.message_user(request, ngettext("Enabled %(count)d entry.", "Enabled %(count)d entries.", count)
                          % {"count": count})

    @admin.action(description=gettext_lazy("Disable selected entries (never used in answers)"),
                  permissions=["change"])
    def disable_entries(self, request, queryset):
        count = services.set_entries_enabled(entry_ids=list(queryset.values_list("pk", flat=True)), enabled=False)
        self.message_user(request, ngettext("Disabled %(count)d entry.", "Disabled %(count)d entries.", count)
                          % {"count": count})

    @admin.action(description=gettext_lazy("Re-embed selected entries (compute their vectors again)"),
                  permissions=["change"])
    def reembed_entries(self, request, queryset):
        entry_ids = list(queryset.values_list("pk", flat=True))
        if not enqueue_embedding(entry_ids, force=True):
            self.message_user(request, _("Embeddings are switched off (KB_EMBEDDINGS=off)."), messages.WARNING)
            return
        self.message_user(request, ngettext("Re-embedding %(count)d entry in the background.",
                                           "Re-embedding %(count)d entries in the background.", len(entry_ids))
                          % {"count": len(entry_ids)})

    # --- extra pages ---

    def changelist_view(self, request, extra_context=None):
        can_import = self.has_add_permission(request) and self.has_change_permission(request)
        return super().changelist_view(request, {**(extra_context or {}), "can_import": can_import,
                                                 "embedding_line": embedding_status_line()})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="kb_knowledgeentry_import"),
            path("import/<uuid:job_id>/", view(self.import_job_view), name="kb_knowledgeentry_import_job"),
            path("import/<uuid:job_id>/progress/", view(self.import_progress_view),
                 name="kb_knowledgeentry_import_progress"),
            path("export/<str:file_format>/", view(self.export_view), name="kb_knowledgeentry_export"),
            path("try/", view(self.try_view), name="kb_knowledgeentry_try"),
            *super().get_urls(),
        ]

    def _context(self, request, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title,
                "has_view_permission": self.has_view_permission(request), **extra}

    def _require(self, request, *, write: bool) -> None:
        allowed = (self.has_add_permission(request) and self.has_change_permission(request) if write
                   else self.has_view_permission(request))
        if not allowed:
            raise PermissionDenied

    def import_view(self, request):
        self._require(request, write=True)
        form = UploadForm(request.POST or None, request.FILES or None)
        row_errors = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            content = upload.read(tabular.MAX_FILE_BYTES + 1)
            try:
                outcome = services.import_file(content=content, filename=upload.name,
                                               uploaded_by=request.user.get_username())
            except tabular.FileRejected as exc:
                form.add_error("file", str(exc))
            else:
                if outcome.job is not None:
                    return redirect("admin:kb_knowledgeentry_import_job", job_id=outcome.job.pk)
                if outcome.result is not None:
                    self.message_user(request, _("Imported: %(created)d new, %(updated)d updated.")
                                      % {"created": outcome.result.created, "updated": outcome.result.updated},
                                      messages.SUCCESS)
                    return redirect("admin:kb_knowledgeentry_changelist")
                row_errors = outcome.errors
        return TemplateResponse(request, "admin/kb/knowledgeentry/import.html", self._context(
            request, _("Import knowledge entries"), form=form, row_errors=row_errors,
            async_rows=services.ASYNC_IMPORT_ROWS, columns=tabular.COLUMNS))

    def _job_or_404(self, job_id) -> KnowledgeImport:
        job = access_import(job_id=job_id)
        if job is None:
            raise Http404
        return job

    def import_job_view(self, request, job_id):
        self._require(request, write=True)
        job = self._job_or_404(job_id)
        return TemplateResponse(request, "admin/kb/knowledgeentry/import_job.html", self._context(
            request, _("Importing %(file)s") % {"file": job.filename}, job=job, progress=import_progress(job=job),
            progress_url=reverse("admin:kb_knowledgeentry_import_progress", args=[job.pk])))

    def import_progress_view(self, request, job_id):
        self._require(request, write=True)
        job = access_import(job_id=job_id)
        if job is None:
            return JsonResponse({"detail": "Not found."}, status=404)
        return JsonResponse(import_progress(job=job))

    def export_view(self, request, file_format):
        self._require(request, write=False)
        if file_format not in tabular.FORMATS:
            raise Http404
        content = services.export_entries(file_format=file_format)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = HttpResponse(content, content_type=CONTENT_TYPES[file_format])
        response["Content-Disposition"] = (f'attachment; filename="knowledge-{connection.schema_name}-{stamp}.'
                                           f'{file_format}"')
        return response

    def try_view(self, request):
        self._require(request, write=False)
        query = request.GET.get("q", "").strip()[:500]
        try:
            limit = max(1, min(int(request.GET.get("limit", 5)), MAX_LIMIT))
        except ValueError:
            limit = 5
        matches = search_knowledge(query, limit=limit) if query else None
        return TemplateResponse(request, "admin/kb/knowledgeentry/try.html", self._context(
            request, _("Test a question"), query=query, limit=limit, matches=matches))


def embedding_status_line() -> str:
    """"向量：480/500（local:use-m3）", with the re-embed's phase while one runs or after one failed."""
    status = embedding_status()
    if status.model_id is None:
        return _("Vectors: off (lexical search only)")
    line = _("Vectors: %(embedded)d/%(total)d (%(model)s)") % {
        "embedded": status.embedded, "total": status.total, "model": status.model_id}
    progress = status.progress
    if progress and progress.get("model_id") == status.model_id:
        if progress.get("phase") in ("queued", "embedding"):
            line += " " + _("re-embedding: %(done)d/%(total)d") % {"done": progress["done"],
                                                                    "total": progress["total"]}
        elif progress.get("phase") == "failed":
            line += " " + _("re-embedding failed: %(error)s") % {"error": progress.get("error", "")}
    return line


@admin.register(KnowledgeImport)
class KnowledgeImportAdmin(admin.ModelAdmin):
    list_display = ["filename", "status", "total_rows", "created_count", "updated_count", "created_by",
                    "created_at", "finished_at", "progress_page"]
    list_filter = ["status"]
    fields = ["filename", "file_format", "status", "total_rows", "created_count", "updated_count", "errors",
              "created_by", "created_at", "finished_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")

    @admin.display(description=gettext_lazy("progress"))
    def progress_page(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:kb_knowledgeentry_import_job", args=[obj.pk]),
                           _("progress"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


_WORD_SEPARATORS = re.compile(r"[,，、;；\s]+")


class SynonymForm(forms.ModelForm):
    words = forms.CharField(label=gettext_lazy("words"), max_length=1000,
                            help_text=gettext_lazy("Words that mean the same in your shop, separated by commas or "
                                                   "spaces, e.g. 快递, 包裹, 物流. A word belongs to one group only."))

    class Meta:
        model = Synonym
        fields = ["words", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["words"] = ", ".join(self.instance.words or [])

    def clean_words(self):
        words = [word for word in _WORD_SEPARATORS.split(self.cleaned_data["words"]) if word]
        try:
            return synonyms.clean_group(words, exclude_pk=self.instance.pk)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc


@admin.register(Synonym)
class SynonymAdmin(admin.ModelAdmin):
    """A tenant's synonym groups: applied to every question before retrieval (kb.synonyms)."""

    form = SynonymForm
    list_display = ["word_list", "enabled", "updated_at"]
    list_filter = ["enabled"]
    readonly_fields = ["updated_at"]

    @admin.display(description=gettext_lazy("words"))
    def word_list(self, obj):
        return " / ".join(obj.words)

    def save_model(self, request, obj, form, change):
        group = synonyms.save_group(words=form.cleaned_data["words"], enabled=form.cleaned_data["enabled"],
                                    group=obj if change else None)
        obj.pk, obj.updated_at = group.pk, group.updated_at
