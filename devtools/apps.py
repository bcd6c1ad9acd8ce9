from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Tools for developing TestHub: a lab history at scale, benchmarks. Their commands only touch scratch
    databases they were given (bin/bench makes and marks them), never a lab's own."""

    name = "devtools"
    verbose_name = "development tools"
