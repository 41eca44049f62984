# No operations: reserved for a parallel line of work that needed no schema change (kept: databases have applied it).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tickets", "0009_labels_and_teams")]

    operations = []
