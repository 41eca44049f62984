# Reserved for the queues and assignment's schema changes this session (empty until then).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tickets", "0010_labels_profiles")]

    operations = []
