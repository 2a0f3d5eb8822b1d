from celery import Celery

import fastmon.celery

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
fastmon.celery.configure(app)
