"""swf-monitor's model names, with fields enough for a schema of their own."""

from django.db import models

STATUSES = [("registered", "registered"), ("done", "done")]


class Run(models.Model):
    run_number = models.IntegerField(unique=True)
    start_time = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.run_number)


class StfFile(models.Model):
    stf_filename = models.CharField(max_length=255, unique=True)
    run = models.ForeignKey(Run, null=True, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, default="registered", choices=STATUSES)

    def __str__(self) -> str:
        return self.stf_filename


class Subscriber(models.Model):
    subscriber_name = models.CharField(max_length=255, unique=True)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.subscriber_name


class FastMonFile(models.Model):
    stf_file = models.ForeignKey(StfFile, on_delete=models.CASCADE)
    tf_filename = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=20, default="registered", choices=STATUSES)

    def __str__(self) -> str:
        return self.tf_filename
