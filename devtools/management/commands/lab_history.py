"""Write a lab's history at scale into a scratch database: for benchmarks and for trying the UI.

    bin/bench --history              # through bin/bench, which makes the scratch database
    manage.py lab_history --tasks 10000 --cases 10000000

Refuses any database bin/bench did not make (devtools.scratch).
"""

from django.core.management.base import BaseCommand

from devtools.history import history_generate
from devtools.scratch import scratch_database_require


class Command(BaseCommand):
    help = "Write thousands of tasks and millions of cases into a scratch database (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=10_000)
        parser.add_argument("--cases", type=int, default=10_000_000)
        parser.add_argument("--big-task-cases", type=int, default=100_000)
        parser.add_argument("--nodes", type=int, default=40)

    def handle(self, *args, tasks, cases, big_task_cases, nodes, **options):
        scratch_database_require()
        history = history_generate(tasks=tasks, cases=cases, big_task_cases=big_task_cases, nodes=nodes)
        self.stdout.write(
            f"{history.tasks} tasks, {history.cases} cases (task #{history.big_task_id} has {big_task_cases}) "
            f"written in {history.seconds:.0f} s."
        )
