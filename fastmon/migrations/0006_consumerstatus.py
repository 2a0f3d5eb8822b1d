from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fastmon", "0005_internal_reason"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsumerStatus",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("agent_name", models.CharField(max_length=200, unique=True)),
                ("hostname", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("broker_connected", models.BooleanField()),
                ("last_message_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField()),
            ],
        ),
    ]
