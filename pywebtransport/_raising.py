"""Raising an exception an object keeps, without a reference cycle."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def fresh(exc: E) -> E:
    """A copy of ``exc`` to raise in its place.

    An object that keeps an exception (why it closed) and raises it from its own
    methods links them in a cycle: exception -> traceback -> frame -> object ->
    exception, freed only by the cyclic garbage collector.  Each session whose
    datagram reader ended that way left about twenty objects behind, and those
    collections were a large part of a busy server's latency tail.  The copy
    gets the traceback; the kept exception stays without one.
    """
    cls = type(exc)
    new = cls.__new__(cls)
    new.args = exc.args
    if hasattr(exc, "__dict__"):
        new.__dict__.update(exc.__dict__)
    new.__cause__ = exc.__cause__
    new.__suppress_context__ = exc.__suppress_context__
    return new
