# Reserved for the conversation search's schema changes this session (empty until then).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0021_contact_profiles")]

    operations = []
