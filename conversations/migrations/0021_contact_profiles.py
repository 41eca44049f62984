# Reserved for the customer profiles's schema changes this session (empty until then).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0020_inactivity_close")]

    operations = []
