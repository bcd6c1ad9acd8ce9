"""The demo product: a tiny calculator with a deliberate bug, so the demo report has failures."""


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def multiply(a, b):
    return a * b


def divide(a, b):
    return a / b


def power(a, b):
    return a * b  # the bug the demo's failing cases find: should be a ** b
