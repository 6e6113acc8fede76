"""How the transport cuts its send queue into frames: in order, bounded, counted."""

from __future__ import annotations

from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st

from unixevents._transport import _BATCH_BYTES, Link, _take_batch

# Mostly small messages, some near or over the batch size.
sizes = st.lists(
    st.one_of(
        st.integers(1, 200),
        st.integers(_BATCH_BYTES // 3, _BATCH_BYTES + 10),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(sizes)
def test_batches_keep_order_stay_bounded_and_keep_the_byte_count(lengths: List[int]) -> None:
    link = Link(1)
    for i, n in enumerate(lengths):
        link.outq.append((b"x" * n, i))
        link.qbytes += n
    taken: List[int] = []
    while link.outq:
        batch = _take_batch(link)
        assert batch, "a batch is never empty while messages wait"
        packed = sum(len(data) for data, _ in batch) + len(batch) + 1  # "[", ",", "]"
        assert len(batch) == 1 or packed <= _BATCH_BYTES + 1
        assert link.qbytes == sum(len(data) for data, _ in link.outq)
        taken.extend(token for _, token in batch)
    assert taken == list(range(len(lengths)))
    assert link.qbytes == 0


def test_a_queue_under_the_bound_goes_in_one_batch() -> None:
    link = Link(1)
    for i in range(1000):
        link.outq.append((b"m" * 40, i))
        link.qbytes += 40
    assert [token for _, token in _take_batch(link)] == list(range(1000))
    assert not link.outq and link.qbytes == 0
