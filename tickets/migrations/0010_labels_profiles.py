# Reserved for the labels and profiles's schema changes this session (empty until then).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tickets", "0009_labels_and_teams")]

    operations = []
