"""Beat's scheduler says a broker outage once, then once a minute, and when it is back (testhub/beat.py)."""

import logging
from unittest import mock

import pytest
from celery.beat import SchedulingError
from kombu.exceptions import OperationalError

from testhub.beat import QuietDatabaseScheduler
from testhub.celery import app

pytestmark = pytest.mark.django_db


def _refused_send(*args, **kwargs):
    try:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    except OperationalError as error:
        raise SchedulingError("Couldn't apply scheduled task liveness") from error


@pytest.fixture
def scheduler():
    return QuietDatabaseScheduler(app=app, lazy=True)


def test_a_broker_that_is_away_is_logged_once_not_for_every_task_due(scheduler, caplog):
    entry = mock.Mock()
    entry.name = "liveness"
    with mock.patch.object(scheduler, "apply_async", side_effect=_refused_send), caplog.at_level(logging.INFO):
        for _ in range(30):
            scheduler.apply_entry(entry)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "sending scheduled tasks stopped" in errors[0].getMessage()
    assert not any(record.exc_info for record in caplog.records)


def test_sending_again_says_the_broker_is_back(scheduler, caplog):
    entry = mock.Mock()
    entry.name = "liveness"
    with mock.patch.object(scheduler, "apply_async", side_effect=_refused_send):
        scheduler.apply_entry(entry)
    with mock.patch.object(scheduler, "apply_async"), caplog.at_level(logging.WARNING):
        scheduler.apply_entry(entry)
    assert "sending scheduled tasks working again" in caplog.text


def test_a_task_that_cannot_be_sent_for_another_reason_is_logged_with_its_traceback(scheduler, caplog):
    entry = mock.Mock()
    entry.name = "liveness"
    refused = SchedulingError("Couldn't apply scheduled task liveness: no such task")
    with mock.patch.object(scheduler, "apply_async", side_effect=refused):
        scheduler.apply_entry(entry)
    assert caplog.records[-1].exc_info and "could not send the scheduled task liveness" in caplog.text
