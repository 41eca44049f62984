"""Tenant admin of the tenant's sensitive words (conversations.services.sensitive_words): add many at once, one
per line; enable, disable or delete a selection. Every change reaches the matchers on commit."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from conversations.models import SensitiveWord
from conversations.services import sensitive_words


class SensitiveWordsAddForm(forms.ModelForm):
    words = forms.CharField(label=gettext_lazy("words"), widget=forms.Textarea(attrs={"rows": 8}),
                            help_text=gettext_lazy("One per line. Matched anywhere in a message, ignoring case and "
                                                   "full-width forms."))

    class Meta:
        model = SensitiveWord
        fields = []

    def clean_words(self):
        words, problems = sensitive_words.clean_words(self.cleaned_data["words"].splitlines())
        if problems:
            raise forms.ValidationError(problems)
        if not words:
            raise forms.ValidationError(_("Write at least one word."))
        return words


@admin.register(SensitiveWord)
class SensitiveWordAdmin(admin.ModelAdmin):
    list_display = ["word", "enabled", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["word"]
    actions = ["enable_words", "disable_words", "delete_words"]
    list_per_page = 100

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = SensitiveWordsAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["words"] if obj is None else ["word", "enabled"]

    def get_readonly_fields(self, request, obj=None):
        return ["word"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            sensitive_words.set_enabled(ids=[obj.pk], enabled=form.cleaned_data["enabled"])
            return
        added = sensitive_words.add_words(form.cleaned_data["words"])
        obj.pk = SensitiveWord.objects.filter(word__in=form.cleaned_data["words"]).order_by("pk").first().pk
        messages.info(request, _("%(count)d new sensitive words.") % {"count": added})

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletes go through the service (the matchers must rebuild)
        return actions

    def delete_model(self, request, obj):
        sensitive_words.delete_words(ids=[obj.pk])

    @admin.action(description=gettext_lazy("Enable selected words"))
    def enable_words(self, request, queryset):
        sensitive_words.set_enabled(ids=list(queryset.values_list("pk", flat=True)), enabled=True)

    @admin.action(description=gettext_lazy("Disable selected words"))
    def disable_words(self, request, queryset):
        sensitive_words.set_enabled(ids=list(queryset.values_list("pk", flat=True)), enabled=False)

    @admin.action(description=gettext_lazy("Delete selected words"))
    def delete_words(self, request, queryset):
        sensitive_words.delete_words(ids=list(queryset.values_list("pk", flat=True)))
