from fastmon.celery import create_app

app = create_app("demo")
# Celery's current app is per thread: the consumer's thread, which runs the sampling tasks
# eagerly, would otherwise get Celery's unconfigured fallback app (and an AMQP broker).
app.set_default()
