# The message-text index of the conversation search (conversations/search/models.py): written by the indexing
# job, never on the message path. Empty at first: the job fills it from the oldest message on, batch by batch.

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0021_contact_profiles")]

    operations = [
        migrations.CreateModel(
            name="MessageSearchEntry",
            fields=[
                ("message", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                                 related_name="+", serialize=False, to="conversations.message")),
                ("created_at", models.DateTimeField()),
                ("terms", models.TextField(blank=True)),
                ("vector", models.GeneratedField(
                    db_persist=True,
                    expression=django.contrib.postgres.search.SearchVector("terms", config="simple"),
                    output_field=django.contrib.postgres.search.SearchVectorField())),
                ("conversation", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                                   to="conversations.conversation")),
            ],
            options={
                "indexes": [django.contrib.postgres.indexes.GinIndex(fields=["vector"],
                                                                     name="conv_message_search_gin")],
            },
        ),
    ]
