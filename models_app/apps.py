from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "Models"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from .jobs import warmup

        # Sent only in a Django-Q2 worker process as it starts: the web process and the
        # terminal commands never warm up (never import torch) this way.
        post_spawn.connect(warmup.on_worker_spawn, dispatch_uid="mistudio-worker-warm-up")
