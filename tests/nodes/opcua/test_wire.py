"""The PublishResponse fast path (wire.py) reads what asyncua's own encoder writes exactly as
asyncua's decoder does, and hands everything else back (None) so asyncua decodes it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flowengine.nodes.opcua.parse import Reading, frame_of, from_ticks

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua
from asyncua.common.utils import Buffer  # noqa: E402
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary  # noqa: E402

from flowengine.nodes.opcua.wire import decode_publish  # noqa: E402

VT = ua.VariantType
T = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def response(*values: ua.DataValue, sid: int = 7, seq: int = 42) -> bytes:
    items = []
    for handle, value in enumerate(values, start=1):
        item = ua.MonitoredItemNotification()
        item.ClientHandle, item.Value = handle, value
        items.append(item)
    message = ua.PublishResponse()
    message.Parameters.SubscriptionId = sid
    message.Parameters.AvailableSequenceNumbers = [seq - 2, seq - 1]
    message.Parameters.NotificationMessage.SequenceNumber = seq
    message.Parameters.NotificationMessage.NotificationData = [
        ua.DataChangeNotification(MonitoredItems=items)
    ]
    return bytes(struct_to_binary(message))


def dv(value: Any, vtype: Any, **kw: Any) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vtype), **{"SourceTimestamp": T, **kw})


SCALARS = [
    (True, VT.Boolean),
    (-5, VT.SByte),
    (250, VT.Byte),
    (-300, VT.Int16),
    (60000, VT.UInt16),
    (-(2**31), VT.Int32),
    (2**32 - 1, VT.UInt32),
    (-(2**63), VT.Int64),
    (2**64 - 1, VT.UInt64),
    (2.5, VT.Float),
    (float("nan"), VT.Double),
    (float("-inf"), VT.Double),
    ("Grüße", VT.String),
    ("", VT.String),
    (None, VT.String),
    (None, VT.Null),
]


def test_scalars_timestamps_and_status_read_as_asyncua_reads_them() -> None:
    values = [dv(v, t, ServerTimestamp=T, StatusCode=ua.StatusCode(0x480)) for v, t in SCALARS]
    values.append(ua.DataValue(ua.Variant(1.0, VT.Double)))  # no timestamps, no status
    values.append(dv(3.0, VT.Double, ServerPicoseconds=7, ServerTimestamp=T))
    raw = response(*values)
    fast = decode_publish(raw)
    assert fast is not None
    ref = struct_from_binary(ua.PublishResponse, Buffer(raw)).Parameters
    assert (fast.subscription_id, fast.sequence_number, fast.notifications) == (7, 42, 1)
    items = ref.NotificationMessage.NotificationData[0].MonitoredItems
    assert len(fast.changes) == len(items)
    for (handle, value, code, source, server), item in zip(fast.changes, items, strict=True):
        want = item.Value
        assert handle == item.ClientHandle
        assert repr(value) == repr(want.Value.Value)  # nan == nan, and the type
        assert code == (want.StatusCode.value if want.StatusCode else 0)
        assert (source and from_ticks(source)) == want.SourceTimestamp
        assert (server and from_ticks(server)) == want.ServerTimestamp


def test_rows_from_either_decoder_are_the_same() -> None:
    values = [dv(v, t, ServerTimestamp=T) for v, t in SCALARS if t is not VT.Null]
    raw = response(*values)
    fast = decode_publish(raw)
    assert fast is not None
    ref = struct_from_binary(ua.PublishResponse, Buffer(raw)).Parameters
    items = ref.NotificationMessage.NotificationData[0].MonitoredItems
    slow = [Reading(f"s{i.ClientHandle}", "n", i.Value) for i in items]
    quick = [Reading.of(f"s{h}", "n", v, c, s, sv) for h, v, c, s, sv in fast.changes]
    a, b = frame_of(slow).rows, frame_of(quick).rows
    assert a.astype(str).equals(b.astype(str)) and a.dtypes.equals(b.dtypes)


@pytest.mark.parametrize(
    "value",
    [
        dv([1.0, 2.0], VT.Double),  # an array
        dv(ua.LocalizedText("x"), VT.LocalizedText),  # another type
        dv(T, VT.DateTime),
        dv(1.0, VT.Double, SourcePicoseconds=5, ServerTimestamp=T),  # the order asyncua differs on
    ],
    ids=["array", "localized-text", "datetime-value", "source-picoseconds"],
)
def test_what_it_does_not_read_goes_to_asyncua(value: ua.DataValue) -> None:
    assert decode_publish(response(dv(1.0, VT.Double), value)) is None


def test_status_changes_keepalives_faults_and_garbage() -> None:
    status = ua.PublishResponse()
    status.Parameters.NotificationMessage.NotificationData = [
        ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    ]
    assert decode_publish(bytes(struct_to_binary(status))) is None
    keepalive = ua.PublishResponse()
    keepalive.Parameters.SubscriptionId = 3
    keepalive.Parameters.NotificationMessage.SequenceNumber = 9
    assert decode_publish(bytes(struct_to_binary(keepalive))) == (3, 9, 0, [])
    fault = ua.ServiceFault()
    fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadTooManyPublishRequests)
    assert decode_publish(bytes(struct_to_binary(fault))) is None
    raw = response(*(dv(float(i), VT.Double) for i in range(5)))
    assert decode_publish(raw) is not None
    for cut in range(len(raw)):
        assert decode_publish(raw[:cut]) is None  # never raises, never reads past the end
    assert decode_publish(raw + b"\0") is None
    assert decode_publish(b"") is None
