"""A lab's history at scale, written by PostgreSQL itself: thousands of tasks, millions of cases, their reports.

Realistic where it matters to the queries: tasks of several products, tools and testers spread over months,
most finished, some cancelled, a few still running or queued; cases named as pytest names them and run again
in every task of their product, mostly passing, some failing with a few kinds of error, some timing out, on
forty nodes, with durations and logs; counts kept on each task as TestHub keeps them, and a report for each
task that ended. One task has `big_task_cases` cases, as a nightly full run would.
"""

import time
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.utils import timezone

from accounts.roles import LAB_MANAGERS, TESTERS
from catalog.models import Product, ProductTool, TestTool
from execution.models import Case, Task, TaskNodeCount
from messaging.revisions import CATALOG, NODES, TASKS, USERS, revisions_bump
from nodes.models import InstallState, Node, NodeProduct, NodeTool
from reporting.models import Report

PRODUCTS, TOOLS, TESTERS_COUNT = 20, 5, 12
DAYS = 180

# Case outcomes by a deterministic draw 0-99 per case: the distribution of a lab's long history.
_OUTCOME = """CASE
    WHEN t.status = 'queued' THEN 'queued'
    WHEN t.status IN ('running', 'cancelling') AND s > t.n * 0.8 THEN 'queued'
    WHEN t.status IN ('running', 'cancelling') AND s > t.n * 0.7 THEN 'running'
    WHEN t.status = 'cancelled' AND s > t.n * 0.6 THEN 'cancelled'
    WHEN (s * 7919 + t.id * 104729) % 100 < 86 THEN 'passed'
    WHEN (s * 7919 + t.id * 104729) % 100 < 95 THEN 'failed'
    ELSE 'error' END"""

# What a failed or erroring case leaves in its log: a few causes, with details that vary from case to case.
_LOG = """CASE o.status
    WHEN 'passed' THEN o.name || ' PASSED [' || (o.draw % 97) || '%]' || chr(10)
    WHEN 'failed' THEN CASE o.draw % 4
        WHEN 0 THEN 'Traceback (most recent call last):' || chr(10) || '  File "/opt/testhub/products/x/tests/'
            || 'test_module_' || (o.s % 97) || '.py", line ' || (10 + o.s % 400) || ', in test_case_' || o.s || chr(10)
            || '    assert result == expected' || chr(10) || 'AssertionError: assert ' || (o.s % 1000) || ' == '
            || (o.s % 1000 + 1) || chr(10)
        WHEN 1 THEN 'E   requests.exceptions.ConnectionError: HTTPConnectionPool(host=''10.0.' || (o.s % 255)
            || '.7'', port=8080): Max retries exceeded' || chr(10)
        WHEN 2 THEN 'E   TimeoutError: waited ' || (o.s % 60) || '.0 s for /tmp/tmp' || md5(o.s::text) || '/ready'
            || chr(10)
        ELSE 'E   KeyError: ''user_' || (o.s % 5000) || '''' || chr(10) END
    WHEN 'error' THEN 'collected ' || (o.s % 9) || ' items' || chr(10)
        || '[TestHub: timed out after 600 s; process tree killed]' || chr(10)
    ELSE '' END"""


@dataclass
class History:
    tasks: int
    cases: int
    big_task_id: int
    seconds: float


def history_generate(*, tasks: int, cases: int, big_task_cases: int = 100_000, nodes: int = 40) -> History:
    """Write the history (on PostgreSQL). `cases` counts every case, the big task's included."""
    started = time.monotonic()
    now = timezone.now()
    with transaction.atomic():
        users = _users()
        links, lab_nodes = _lab(nodes)
    with transaction.atomic():
        first_task = _tasks(tasks, links=links, users=users, now=now)
        big_task = first_task + max(tasks - 40, 0)  # among the newest finished ones: a full nightly run
        _case_counts_per_task(first_task, tasks, cases=cases, big_task=big_task, big_task_cases=big_task_cases)
    _cases(lab_nodes)
    with transaction.atomic():
        _counts_kept()
        _node_counts_kept()
        _reports()
    with connection.cursor() as cursor:
        for table in (Task._meta.db_table, Case._meta.db_table, Report._meta.db_table):
            cursor.execute(f"ANALYZE {table}")
    revisions_bump(TASKS, CATALOG, NODES, USERS)  # written around the ORM: answers kept from before are stale
    return History(tasks=tasks, cases=cases, big_task_id=big_task, seconds=time.monotonic() - started)


def _users() -> list[int]:
    testers = Group.objects.get(name=TESTERS)
    ids = []
    for number in range(TESTERS_COUNT):
        user, _ = User.objects.get_or_create(username=f"history-tester-{number}")
        user.groups.add(testers)
        ids.append(user.pk)
    manager, _ = User.objects.get_or_create(username="history-manager", defaults={"is_staff": True})
    manager.groups.add(Group.objects.get(name=LAB_MANAGERS))
    return ids


def _lab(nodes: int) -> tuple[list[tuple[int, int]], list[int]]:
    products = [Product.objects.get_or_create(name=f"product-{n:02}", version="1.0")[0] for n in range(PRODUCTS)]
    tools = [
        TestTool.objects.get_or_create(
            name=f"tool-{n}", version="1", defaults={"command_template": "{tool_path}/run {case}"}
        )[0]
        for n in range(TOOLS)
    ]
    links = [(product.pk, tools[index % TOOLS].pk) for index, product in enumerate(products)]
    for product_id, tool_id in links:
        ProductTool.objects.get_or_create(product_id=product_id, tool_id=tool_id)
    lab_nodes = []
    for number in range(nodes):
        node, created = Node.objects.get_or_create(
            name=f"history-node-{number:02}",
            defaults={"ip": f"10.20.{number // 250}.{number % 250 + 1}", "username": "lab", "managed": False,
                      "status": Node.Status.ONLINE if number % 10 else Node.Status.OFFLINE, "slots": 2},
        )  # fmt: skip
        if created:
            for product_id, tool_id in links[number % 4 :: 4]:
                install = NodeProduct.objects.create(
                    node=node, product_id=product_id, install_path=f"/opt/testhub/products/{product_id}",
                    state=InstallState.INSTALLED,
                )  # fmt: skip
                NodeTool.objects.create(
                    node_product=install, tool_id=tool_id, install_path=f"/opt/testhub/tools/{tool_id}",
                    state=InstallState.INSTALLED,
                )  # fmt: skip
        lab_nodes.append(node.pk)
    return links, lab_nodes


def _tasks(count: int, *, links: list[tuple[int, int]], users: list[int], now) -> int:
    """Tasks oldest first over DAYS days; the newest few are running or queued. Returns the first task's id."""
    products = ",".join(str(product) for product, _ in links)
    tools = ",".join(str(tool) for _, tool in links)
    people = ",".join(str(user) for user in users)
    sql = f"""
        INSERT INTO {Task._meta.db_table} (name, product_id, tool_id, priority, status, created_by_id, case_timeout,
            webhook_url, created_at, dispatched_at, started_at, finished_at, cases_total, cases_queued,
            cases_running, cases_passed, cases_failed, cases_error, cases_cancelled, cases_timed, cases_seconds)
        SELECT
            CASE WHEN g %% 7 = 0 THEN 'nightly ' ELSE 'run ' END || g,
            (ARRAY[{products}])[g %% {len(links)} + 1],
            (ARRAY[{tools}])[g %% {len(links)} + 1],
            CASE WHEN g %% 13 = 0 THEN 8 WHEN g %% 5 = 0 THEN 3 ELSE 5 END,
            CASE WHEN g > %(count)s - 3 THEN 'queued' WHEN g > %(count)s - 10 THEN 'running'
                 WHEN g %% 50 = 0 THEN 'cancelled' ELSE 'finished' END,
            (ARRAY[{people}])[g %% {len(users)} + 1],
            600, '',
            %(now)s - make_interval(secs => (%(count)s - g) * %(spread)s),
            %(now)s - make_interval(secs => (%(count)s - g) * %(spread)s - 1),
            %(now)s - make_interval(secs => (%(count)s - g) * %(spread)s - 2),
            NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0
        FROM generate_series(1, %(count)s) AS g
        RETURNING id
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {"count": count, "now": now, "spread": DAYS * 86400 / max(count, 1)})
        return min(row[0] for row in cursor.fetchall())


def _case_counts_per_task(first: int, count: int, *, cases: int, big_task: int, big_task_cases: int) -> None:
    """How many cases each task gets, in a scratch table: the big task its share, the rest alike."""
    others = max(count - 1, 1)
    base, extra = divmod(max(cases - big_task_cases, 0), others)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS history_sizes")
        cursor.execute("CREATE TABLE history_sizes (task_id bigint PRIMARY KEY, n integer NOT NULL)")
        cursor.execute(
            f"""INSERT INTO history_sizes SELECT id, CASE WHEN id = %(big)s THEN %(big_n)s
                ELSE %(base)s + CASE WHEN id - %(first)s < %(extra)s THEN 1 ELSE 0 END END
                FROM {Task._meta.db_table} WHERE id >= %(first)s""",  # noqa: S608
            {"big": big_task, "big_n": big_task_cases, "base": base, "extra": extra, "first": first},
        )


def _cases(nodes: list[int]) -> None:
    """The cases, written with the case table's indexes dropped and made again after: several times faster."""
    table = Case._meta.db_table
    node_array = ",".join(str(node) for node in nodes)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
            [table, "%pkey"],
        )
        indexes = cursor.fetchall()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # (inside a caller's transaction: checks done before ALTER)
        constraints = [name for name, _ in indexes if name.endswith("_unique")]
        for name in constraints:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute(f"""
            INSERT INTO {table} (task_id, name, status, node_id, attempts, exit_code, started_at, finished_at, log)
            SELECT o.task_id, o.name, o.status,
                CASE WHEN o.status = 'queued' THEN NULL ELSE (ARRAY[{node_array}])[o.draw % {len(nodes)} + 1] END,
                CASE WHEN o.status = 'queued' THEN 0 WHEN o.draw % 31 = 0 THEN 2 ELSE 1 END,
                CASE o.status WHEN 'passed' THEN 0 WHEN 'failed' THEN 1 ELSE NULL END,
                CASE WHEN o.status IN ('queued', 'cancelled') THEN NULL ELSE o.started END,
                CASE WHEN o.status IN ('queued', 'running', 'cancelled') THEN NULL
                     ELSE o.started + make_interval(secs => 0.05 + (o.draw % 3000) / 100.0) END,
                {_LOG}
            FROM (
                SELECT t.id AS task_id, s, (s * 7919 + t.id * 104729) % 100000 AS draw,
                    'tests/test_module_' || (s % 97) || '.py::test_case_' || s AS name,
                    {_OUTCOME} AS status,
                    t.started_at + make_interval(secs => s * 0.2) AS started
                FROM (SELECT task.id, task.status, task.started_at, sizes.n
                      FROM {Task._meta.db_table} task JOIN history_sizes sizes ON sizes.task_id = task.id) t
                CROSS JOIN LATERAL generate_series(1, t.n) AS s
            ) o
        """)  # noqa: S608
        for name, definition in indexes:
            if name in constraints:
                columns = definition[definition.index("(") :]
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE {columns}")
            else:
                cursor.execute(definition)
        cursor.execute("DROP TABLE history_sizes")


def _counts_kept() -> None:
    """Each task's kept counts and timings, and its finish for those that ended: as TestHub keeps them."""
    counts = ", ".join(f"{field} = c.{field}" for field in ["cases_total", *(f"cases_{s}" for s in Case.Status.values)])
    with connection.cursor() as cursor:
        cursor.execute(f"""
            UPDATE {Task._meta.db_table} t SET {counts}, cases_timed = c.timed, cases_seconds = c.seconds,
                finished_at = CASE WHEN t.status IN ('finished', 'cancelled') THEN c.last ELSE NULL END
            FROM (SELECT task_id, count(*) AS cases_total,
                    {", ".join(f"count(*) FILTER (WHERE status = '{s}') AS cases_{s}" for s in Case.Status.values)},
                    count(finished_at - started_at) AS timed,
                    coalesce(sum(extract(epoch FROM finished_at - started_at)), 0) AS seconds,
                    max(coalesce(finished_at, started_at)) AS last
                  FROM {Case._meta.db_table} GROUP BY task_id) c
            WHERE c.task_id = t.id
        """)  # noqa: S608


def _node_counts_kept() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {TaskNodeCount._meta.db_table} (task_id, node_name, status, cases)
            SELECT c.task_id, n.name, c.status, count(*)
            FROM {Case._meta.db_table} c JOIN {Node._meta.db_table} n ON n.id = c.node_id
            GROUP BY c.task_id, n.name, c.status
            ON CONFLICT (task_id, node_name, status) DO UPDATE SET cases = excluded.cases
        """)  # noqa: S608


def _reports() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {Report._meta.db_table} (task_id, status, cancelled, total, passed, failed, errors, not_run,
                success_rate, duration_seconds, by_node, file, created_at)
            SELECT id, 'ready', status = 'cancelled', cases_total, cases_passed, cases_failed, cases_error,
                cases_cancelled,
                CASE WHEN cases_passed + cases_failed > 0
                     THEN round(100.0 * cases_passed / (cases_passed + cases_failed), 2) END,
                extract(epoch FROM finished_at - started_at), '[]', '', finished_at
            FROM {Task._meta.db_table} t
            WHERE status IN ('finished', 'cancelled') AND NOT EXISTS (
                SELECT 1 FROM {Report._meta.db_table} r WHERE r.task_id = t.id)
        """)  # noqa: S608
