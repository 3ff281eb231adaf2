"""A small controller runtime on the official client: list-then-watch informers and a work
queue with de-duplication, one worker per key and delayed re-queues (the manager decides the
delays: stoker_core.requeue)."""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("stoker.runtime")
# Objects per LIST page: one page, not a whole namespace, is held as JSON at once. At 1,000
# pods of 9 KB a page of 250 raised the controller's peak by 31 MiB, one of 50 by 8 MiB.
PAGE = 50


class WorkQueue:
    """Keys to reconcile. A key is never handed to two workers at once; adding a key that is
    queued is a no-op; adding one that is being processed runs it again afterwards."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queue: list[str] = []
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._later: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}  # each key's one pending schedule (the latest wins)
        self._cond = threading.Condition()
        self._closed = False

    def add(self, key: str) -> None:
        """Queue `key` now."""
        with self._cond:
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` in `delay` seconds, replacing any earlier schedule of it."""
        with self._cond:
            due = self._clock() + delay
            self._due[key] = due
            heapq.heappush(self._later, (due, key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        """The next key (marked active), or None on timeout or close."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                self._promote()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                wait = None if deadline is None else deadline - self._clock()
                if self._later:
                    due = self._later[0][0] - self._clock()
                    wait = due if wait is None else min(wait, due)
                if wait is not None and wait <= 0 and not self._later:
                    return None
                if deadline is not None and self._clock() >= deadline:
                    return None
                self._cond.wait(timeout=None if wait is None else max(wait, 0.001))
        return None

    def done(self, key: str) -> None:
        """Mark `key` finished; re-queue it if it was added meanwhile."""
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def close(self) -> None:
        """Wake every waiting worker; get() returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _promote(self) -> None:
        now = self._clock()
        while self._later and self._later[0][0] <= now:
            due, key = heapq.heappop(self._later)
            if self._due.get(key) != due:
                continue  # replaced by a later schedule
            del self._due[key]
            if key not in self._queued and key not in self._active:
                self._queued.add(key)
                self._queue.append(key)
            elif key in self._active:
                self._dirty.add(key)


def pages(list_fn: Any, **args: Any) -> Iterator[dict[str, Any]]:
    """The pages of a LIST as JSON (no client models), PAGE items at a time; the last page
    carries the listing's resourceVersion."""
    token = None
    while True:
        more: dict[str, Any] = {"_continue": token} if token else {}
        response = list_fn(_preload_content=False, limit=PAGE, **more, **args)
        try:
            page = json.loads(response.data)
        finally:
            response.release_conn()
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def _key(obj: Any) -> str:
    meta = obj["metadata"] if isinstance(obj, dict) else obj.metadata
    if isinstance(meta, dict):
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return f"{meta.namespace or ''}/{meta.name}"


class Informer:
    """List, then watch from the list's resourceVersion (with bookmarks, a server-side timeout
    and a client read timeout, so a silent connection cannot hang it); relist on 410 Gone or
    any error. A relist reports
    objects deleted while no watch was open as DELETED (their last known state)."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        on_event: Callable[[str, Any], None],
        *,
        watch_timeout: int = 60,
        strip: Callable[[dict[str, Any]], Any] | None = None,
        **list_args: Any,
    ) -> None:
        self._list = list_fn
        self._on_event = on_event
        # With `strip`, objects are read as JSON (paged lists, no client models) and only
        # what strip(object) returns is kept and handed to on_event.
        self._strip = strip
        self._args = list_args
        self._timeout = watch_timeout
        self._stop = threading.Event()
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._known: dict[str, Any] = {}
        self._known_lock = threading.Lock()

    def lookup(self, namespace: str, name: str) -> Any | None:
        """One object as last listed or watched (None: not known)."""
        with self._known_lock:
            return self._known.get(f"{namespace}/{name}")

    def remember(self, obj: Any) -> None:
        """Take an object we just wrote, ahead of its watch event (read-your-writes)."""
        with self._known_lock:
            self._known[_key(obj)] = obj

    def cached(self, namespace: str) -> list[Any]:
        """The objects of `namespace` as last listed or watched (valid once `synced` is set)."""
        prefix = namespace + "/"
        with self._known_lock:
            return [obj for key, obj in self._known.items() if key.startswith(prefix)]

    def start(self) -> Informer:
        """Begin listing and watching in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current watch call returns (at most `watch_timeout`)."""
        self._stop.set()

    def _listing(self) -> tuple[str, dict[str, Any]]:
        """The current objects by key, and the listing's resourceVersion to watch from."""
        timeout = (10, self._timeout + 10)
        if self._strip is not None:
            listed, version = {}, ""
            for page in pages(self._list, _request_timeout=timeout, **self._args):
                for item in page.get("items") or []:
                    listed[_key(item)] = self._strip(item)
                version = (page.get("metadata") or {}).get("resourceVersion") or version
            return version, listed
        listing = self._list(_request_timeout=timeout, **self._args)
        if isinstance(listing, dict):
            items, version = listing["items"], listing["metadata"]["resourceVersion"]
        else:
            items, version = listing.items, listing.metadata.resource_version
        return version, {_key(item): item for item in items}

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        failures = 0
        while not self._stop.is_set():
            try:
                version, listed = self._listing()
                items = list(listed.values())
                with self._known_lock:
                    gone = [self._known[key] for key in set(self._known) - set(listed)]
                    self._known = listed
                for obj in gone:
                    self._on_event("DELETED", obj)
                for item in items:
                    self._on_event("ADDED", item)
                self.synced.set()
                failures = 0
                while not self._stop.is_set():
                    # "object" keeps a stripped informer's events as JSON (no client model).
                    stream = watch.Watch(return_type="object" if self._strip else None)
                    for event in stream.stream(
                        self._list,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=self._timeout,
                        # The server ends the watch at timeout_seconds; if even that never
                        # arrives (a silent hang: a dead peer, a NAT that dropped the flow),
                        # the client's own read timeout ends it and we relist.
                        _request_timeout=(10, self._timeout + 10),
                        **self._args,
                    ):
                        obj = event["object"]
                        meta = obj["metadata"] if isinstance(obj, dict) else obj.metadata
                        version = (
                            meta.get("resourceVersion")
                            if isinstance(meta, dict)
                            else meta.resource_version
                        ) or version
                        key = _key(obj)
                        if self._strip is not None and event["type"] != "BOOKMARK":
                            obj = self._strip(obj)
                        with self._known_lock:
                            if event["type"] in ("ADDED", "MODIFIED"):
                                self._known[key] = obj
                            elif event["type"] == "DELETED":
                                self._known.pop(key, None)
                        if event["type"] != "BOOKMARK":
                            self._on_event(event["type"], obj)
                        if self._stop.is_set():
                            stream.stop()
                            break
            except ApiException as e:
                if e.status != 410:
                    failures += 1
                    log.warning("watch failed (%s); relisting", e.reason)
                    self._stop.wait(min(30.0, 0.5 * 2**failures))
            except Exception as e:  # a broken connection: relist after a pause
                failures += 1
                log.warning("watch broke (%s); relisting", type(e).__name__)
                self._stop.wait(min(30.0, 0.5 * 2**failures))
