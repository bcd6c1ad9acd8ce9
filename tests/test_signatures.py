"""What a failure's log says caused it, reduced to what stays the same from run to run (execution.signatures)."""

from execution.signatures import failure_signature

PYTHON = """Traceback (most recent call last):
  File "/home/ci/build-{build}/app/tests/test_calc.py", line {line}, in test_divide
    divide(1, 0)
  File "/home/ci/build-{build}/app/calc.py", line 99, in divide
    return a / b
ZeroDivisionError: division by zero at 0x{address} on {when} in /tmp/pytest-of-ci/pytest-{run}/test0
"""


def _python(**values) -> str:
    defaults = {"build": 4411, "line": 12, "address": "7f3a2b", "when": "2026-11-23T10:00:01Z", "run": 33}
    return PYTHON.format(**{**defaults, **values})


def test_failures_that_differ_only_in_numbers_addresses_paths_times_and_temp_names_share_a_signature():
    first = failure_signature(_python())
    second = failure_signature(_python(build=9, line=40, address="deadbeef", when="2027-01-02 03:04:05", run=7))
    assert first.digest == second.digest


def test_a_different_error_line_is_a_different_signature():
    other = _python().replace("division by zero", "float division")
    assert failure_signature(other).digest != failure_signature(_python()).digest


def test_the_title_is_the_last_error_line_and_the_innermost_frame_with_the_raw_line_kept_apart():
    signature = failure_signature(_python())
    assert signature.title == "ZeroDivisionError: division by zero at <hex> on <time> in <tmp> (in calc.py:divide)"
    assert signature.failure.startswith("ZeroDivisionError: division by zero at 0x7f3a2b")


def test_pytests_explanation_is_named_by_its_first_line():
    log = "tests/test_calc.py:14: in test_add\n    assert add(2, 2) == 5\n"
    log += "E   assert 4 == 5\nE    +  where 4 = add(2, 2)\n"
    assert failure_signature(log).title == "assert <n> == <n> (in test_calc.py:test_add)"


def test_a_java_failure_is_placed_at_the_innermost_frame_of_its_stack():
    log = (
        "java.lang.IllegalStateException: pool exhausted after 30 ms\n"
        "\tat com.acme.Pool.take(Pool.java:41)\n\tat com.acme.Service.run(Service.java:12)\nTests run: 1, Failures: 1\n"
    )
    assert failure_signature(log).title == (
        "java.lang.IllegalStateException: pool exhausted after <n> ms (in Pool.java:Pool.take)"
    )


def test_a_timeout_noted_by_testhub_groups_whatever_the_limit_was():
    first = failure_signature("working...\n[TestHub: timed out after 600 s; process tree killed]\n")
    second = failure_signature("[TestHub: timed out after 30 s; process tree killed]\n")
    assert first.digest == second.digest and first.title.startswith("[TestHub: timed out")


def test_a_case_that_printed_nothing_has_a_signature_too():
    assert failure_signature("").title == "no output"


def test_pytests_closing_summary_line_gives_way_to_its_explanation():
    log = "E   assert 4 == 5\n=== short test summary info ===\nFAILED tests/test_calc.py::test_add\n1 failed\n"
    assert failure_signature(log).failure == "assert 4 == 5"
