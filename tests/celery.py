from fastmon.celery import create_app

app = create_app("tests")
