"""Admin of labels (标签): the tenant's operators and supervisors name them and pick their colours; agents put
them on conversations on the agent screens. Imported by tickets/admin.py. The model's clean() refuses a blank
name or one another label has (in any case); the colour is a #rrggbb picked with the browser's colour input."""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from tickets.labels.models import Label


class LabelForm(forms.ModelForm):
    class Meta:
        model = Label
        fields = ["name", "color", "description"]
        widgets = {"color": forms.TextInput(attrs={"type": "color"})}


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    form = LabelForm
    list_display = ["chip", "description", "conversations_count", "created_at"]
    list_display_links = ["chip"]
    search_fields = ["name", "description"]
    fields = ["name", "color", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(conversations_count=Count("conversations", distinct=True))

    @admin.display(description=_("label"), ordering="name")
    def chip(self, label: Label):
        # The colour passed the model's #rrggbb validator; format_html escapes the name.
        return format_html('<span class="label-chip"><span style="display:inline-block;width:.8em;height:.8em;'
                           'border-radius:50%;background:{};margin-right:.4em"></span>{}</span>',
                           label.color, label.name)

    @admin.display(description=_("conversations"), ordering="conversations_count")
    def conversations_count(self, label: Label) -> int:
        return label.conversations_count
