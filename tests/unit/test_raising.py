"""pywebtransport._raising.fresh: raise a kept exception without a reference cycle."""

from __future__ import annotations

import pytest

from pywebtransport._raising import fresh
from pywebtransport.exceptions import SessionClosedError, StreamResetError
from pywebtransport.quic import StreamClosedError


@pytest.mark.parametrize(
    "kept",
    [
        StreamResetError("stream 4 reset by the peer", stream_id=4, reset_code=7),
        SessionClosedError("session closed", session_id=0),
        StreamClosedError("stream 8 is closed"),
        TimeoutError("slow"),
    ],
)
def test_the_copy_is_the_same_error_and_the_kept_one_gets_no_traceback(kept: BaseException) -> None:
    kept.__cause__ = ValueError("why")

    class Keeper:
        def __init__(self) -> None:
            self.error = kept

        def check(self) -> None:
            raise fresh(self.error)

    with pytest.raises(type(kept)) as info:
        Keeper().check()
    copy = info.value
    assert copy is not kept
    assert str(copy) == str(kept) and copy.args == kept.args
    assert vars(copy) == vars(kept)
    assert copy.__cause__ is kept.__cause__
    assert copy.__traceback__ is not None and kept.__traceback__ is None
