"""Serialising requests cheaply (``CallbackNames``), shared by the journal (crawler/jobqueue.py) and by
``RequestDiskQueue``, Scrapy's ``PickleLifoDiskQueue`` for plain ``scrapy crawl`` with a JOBDIR: same files, records
and order, cheaper per request."""

from __future__ import annotations

import pickle
import struct
from typing import Any

from scrapy.squeues import PickleLifoDiskQueue
from scrapy.utils.request import request_from_dict

TAIL_BYTES = 16 * 1024  # pickled requests kept in memory per queue before the oldest half is written
_SIZE = struct.Struct(">L")  # queuelib.queue.LifoDiskQueue.SIZE_FORMAT: each record is followed by its length


def _serialize(obj: Any) -> bytes:
    """scrapy.squeues._pickle_serialize: pickle protocol 4, ValueError for what cannot be pickled (the scheduler
    then keeps the request in memory)."""
    try:
        return pickle.dumps(obj, protocol=4)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ValueError(str(exc)) from exc


class CallbackNames:
    """``Request.to_dict(spider=...)`` without its cost per request: Scrapy finds the names of the callback and
    errback by listing every member of the spider (``inspect.getmembers``) for each request, which was most of what
    resumability cost on a 10,000-page crawl. The name only depends on the function behind the bound method (that
    is all Scrapy compares), so it is remembered per function and handed to ``to_dict`` as the string it would have
    found. Anything else (a plain function, ``NO_CALLBACK``, a method the spider does not have) takes Scrapy's own
    path, with its own result or error."""

    def __init__(self) -> None:
        self._names: dict[Any, str] = {}

    def _known(self, func: Any) -> str | None:
        function = getattr(func, "__func__", None)
        return None if function is None else self._names.get(function)

    def to_dict(self, request: Any, spider: Any) -> dict[str, Any]:
        callback, errback = request.callback, request.errback
        callback_name, errback_name = self._known(callback), self._known(errback)
        if (callback is None or callback_name) and (errback is None or errback_name):
            # to_dict keeps a callback that is not callable as it is: give it the names it would have found
            request.callback, request.errback = callback_name, errback_name
            try:
                named: dict[str, Any] = request.to_dict(spider=spider)
                return named
            finally:
                request.callback, request.errback = callback, errback
        data: dict[str, Any] = request.to_dict(spider=spider)
        for func, key in ((callback, "callback"), (errback, "errback")):
            function = getattr(func, "__func__", None)
            if function is not None and isinstance(data[key], str):
                self._names[function] = data[key]
        return data

    def dumps(self, request: Any, spider: Any) -> bytes:
        return _serialize(self.to_dict(request, spider))


class RequestDiskQueue(PickleLifoDiskQueue):  # type: ignore[misc,valid-type]  # scrapy.squeues builds it at run time
    """Scrapy's ``PickleLifoDiskQueue`` (same file, records and order) for ``scrapy crawl`` with a JOBDIR.

    A crawl pops what it has just pushed (the queue is last in, first out), and queuelib's file queue pays a seek, a
    flush, a read and a truncate for every pop. The newest records stay in memory on top of the file, up to about
    the size of the file's own write buffer (``TAIL_BYTES``); older ones are written to the file in order, and all
    of them when the queue is closed. Like Scrapy's, the file is complete only once it is closed: ``optout crawl``
    uses the journal instead."""

    def __init__(self, crawler: Any, key: str) -> None:
        super().__init__(crawler, key)
        self._codec = CallbackNames()
        self._tail: list[bytes] = []  # the newest records, newest last; counted in self.size
        self._tail_bytes = 0

    def push(self, request: Any) -> None:
        record = self._codec.dumps(request, self.spider)
        self._tail.append(record)
        self._tail_bytes += len(record)
        self.size += 1
        if self._tail_bytes > TAIL_BYTES:
            self._spill(len(self._tail) // 2 or 1)

    def _spill(self, count: int) -> None:
        """Write the oldest ``count`` records of the tail to the file, as queuelib's push would have."""
        records, self._tail = self._tail[:count], self._tail[count:]
        self._tail_bytes -= sum(len(r) for r in records)
        self.f.seek(0, 2)
        self.f.write(b"".join(r + _SIZE.pack(len(r)) for r in records))

    def pop(self) -> Any | None:
        if self._tail:
            record = self._tail.pop()
            self._tail_bytes -= len(record)
            self.size -= 1
            return request_from_dict(pickle.loads(record), spider=self.spider)
        return super().pop()

    def peek(self) -> Any | None:
        if self._tail:
            return request_from_dict(pickle.loads(self._tail[-1]), spider=self.spider)
        return super().peek()

    def close(self) -> None:
        if self._tail:
            self._spill(len(self._tail))
        super().close()
