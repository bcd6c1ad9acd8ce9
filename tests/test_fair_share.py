"""The rule that decides whose cases a capability's free slots go to (execution.scheduling), on its own."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from execution.scheduling import Waiting, aged_priority, cases_pick

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGING = 600


def _task(task_id: int, *, user: int, cases: int = 10_000, priority: int = 5, minutes_ago: float = 1, flying: int = 0):
    return Waiting(
        task_id=task_id,
        user_id=user,
        priority=priority,
        created_at=NOW - timedelta(minutes=minutes_ago),
        cases=cases,
        in_flight=flying,
    )


def _pick(waiting, count, **options):
    return dict(Counter(cases_pick(waiting=waiting, count=count, now=NOW, aging_seconds=AGING, **options)))


def test_two_users_with_big_tasks_get_half_the_slots_each():
    assert _pick([_task(1, user=1, minutes_ago=5), _task(2, user=2)], 10) == {1: 5, 2: 5}


def test_two_users_cases_go_out_in_turns_not_one_task_after_the_other():
    picked = cases_pick(
        waiting=[_task(1, user=1, minutes_ago=5), _task(2, user=2)], count=4, now=NOW, aging_seconds=AGING
    )
    assert picked in ([1, 2, 1, 2], [2, 1, 2, 1])


def test_a_user_who_splits_a_task_into_many_gets_no_more_than_one_who_does_not():
    split = [_task(task_id, user=1, cases=100, minutes_ago=5) for task_id in range(1, 11)]
    picked = _pick([*split, _task(99, user=2)], 10)
    assert picked[99] == 5 and sum(picked.values()) == 10


def test_a_small_task_behind_a_big_one_gets_the_next_free_slot():
    big, small = _task(1, user=1, minutes_ago=5, flying=4), _task(2, user=2, cases=5)
    assert _pick([big, small], 1) == {2: 1}


def test_a_higher_priority_task_takes_every_free_slot_first():
    assert _pick([_task(1, user=1, priority=3, minutes_ago=5), _task(2, user=2, priority=7, cases=4)], 6) == {
        2: 4,
        1: 2,
    }


def test_a_low_priority_task_ages_until_it_takes_turns_with_high_priority_ones():
    old_low = _task(1, user=1, priority=0, minutes_ago=9 * AGING / 60)
    assert _pick([old_low, _task(2, user=2, priority=9)], 4) == {1: 2, 2: 2}


def test_priority_rises_one_level_per_aging_period_and_stops_at_the_highest():
    created = NOW - timedelta(seconds=3 * AGING + 1)
    assert aged_priority(priority=2, created_at=created, now=NOW, aging_seconds=AGING) == 5
    assert aged_priority(priority=8, created_at=created, now=NOW, aging_seconds=AGING) == 9
    assert aged_priority(priority=2, created_at=created, now=NOW, aging_seconds=0) == 2


def test_a_user_with_twice_the_weight_gets_twice_the_slots():
    picked = _pick([_task(1, user=1, minutes_ago=5), _task(2, user=2)], 9, weights={2: 2.0})
    assert picked == {1: 3, 2: 6}


def test_cases_a_user_has_in_flight_on_finished_tasks_count_against_their_share():
    picked = _pick([_task(1, user=1, minutes_ago=5), _task(2, user=2)], 4, user_in_flight={1: 4, 2: 0})
    assert picked == {2: 4}


def test_a_users_task_with_fewer_cases_in_flight_goes_first():
    assert _pick([_task(1, user=1, minutes_ago=5, flying=3), _task(2, user=1, flying=0)], 3) == {2: 3}


def test_no_more_cases_are_picked_than_the_tasks_have():
    assert _pick([_task(1, user=1, cases=2), _task(2, user=2, cases=1)], 10) == {1: 2, 2: 1}


@pytest.mark.django_db
def test_a_users_own_weight_wins_over_their_groups_and_the_highest_group_weight_counts(tester):
    from django.contrib.auth.models import Group

    from execution.dispatch import user_weights
    from execution.models import ShareWeight
    from tests.factories import TesterFactory

    night_shift = Group.objects.create(name="night shift")
    ShareWeight.objects.create(group=Group.objects.get(name="testers"), weight=2)
    ShareWeight.objects.create(group=night_shift, weight=3)
    grouped, own = TesterFactory(), TesterFactory()
    grouped.groups.add(night_shift)
    own.groups.add(night_shift)
    ShareWeight.objects.create(user=own, weight=1)
    weights = user_weights(user_ids={grouped.pk, own.pk, tester.pk, None})
    assert weights == {grouped.pk: 3.0, own.pk: 1.0, tester.pk: 2.0}
