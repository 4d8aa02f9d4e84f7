"""An informer for the objects the operator follows by the thousand (replica pods and
Deployments).

kopf's watch gives every watched object a worker of its own and, at a start, holds every body
it listed until all its indexes are filled (``kopf/_core/reactor/processing.py`` waits on
``operator_indexed``): with 1,000 objects that was ~3,000 whole bodies at once and the restart's
~285 MiB peak (docs/reconciler.md, "Memory"). This follows one kind the way client-go's
reflector does (``k8s.io/client-go/tools/cache/reflector.go``): a paged list, then a watch from
the list's resourceVersion with bookmarks, a fresh list when the server says 410 Gone, and it
keeps only the small state ``parse`` makes of each object. A watch event costs one parse and
one dictionary update, whatever the number of objects; ``on_change`` is told which group
changed (a refresh reads the group afresh: latest state wins).

The first listing calls ``on_change`` for nothing: whoever starts the informer reconciles every
owner at its start anyway (kopf's resume). A later listing (after 410 or a broken watch) calls
it for every group that changed while nobody watched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as _watch_module

log = logging.getLogger("llm_operator.informer")

S = TypeVar("S")
Key = tuple[str, str]  # (namespace, owner name): what the objects are grouped by
# A list or watch call of the kubernetes client for one scope (a namespace, or None for all),
# e.g. ``CoreV1Api.list_namespaced_pod`` bound to its namespace.
Lister = Callable[..., Any]

PAGE = 250  # objects per list page: a page's JSON is the most a listing holds at once
WATCH_SECONDS = 300  # the server ends a watch after this; the informer resumes it
RETRY_SECONDS = 2.0
# The client's line splitter of a streamed watch response (untyped in the client).
_lines = cast(Callable[[Any], Iterator[str]], _watch_module.iter_resp_lines)


class Gone(Exception):
    """The resourceVersion is too old to watch from (410): list again."""


@dataclass
class Informer(Generic[S]):
    """Keeps ``parse(obj)`` of each object matching ``selector``, grouped by ``key(obj)``."""

    listers: dict[str | None, Lister]  # scope -> the list call (watch=True for the watch)
    selector: str
    key: Callable[[dict[str, Any]], Key | None]
    parse: Callable[[dict[str, Any]], S]
    on_change: Callable[[Key], None] = lambda _key: None
    page: int = PAGE
    _groups: dict[Key, dict[str, S]] = field(default_factory=dict)
    _where: dict[str, tuple[str | None, Key]] = field(default_factory=dict)  # uid -> scope, key
    _namespaces: dict[str, set[Key]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listed: set[str | None] = field(default_factory=set)
    synced: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _responses: dict[str | None, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ reads
    def get(self, key: Key) -> list[S]:
        with self._lock:
            return list(self._groups.get(key, {}).values())

    def in_namespace(self, namespace: str) -> list[S]:
        """Every object of ``namespace`` (its groups', in no particular order)."""
        with self._lock:
            keys = self._namespaces.get(namespace, ())
            return [s for k in keys for s in self._groups.get(k, {}).values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._where)

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        for scope in self.listers:
            t = threading.Thread(
                target=self._run, args=(scope,), name=f"informer-{scope or 'all'}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for resp in list(self._responses.values()):
            # urllib3's shutdown() ends a read blocked in another thread (close() alone waited
            # for the next event or the watch's timeout); closing a dead one may raise anything
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.close()

    def _run(self, scope: str | None) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist(scope)
                while not self._stop.is_set():
                    version = self._watch(scope, version)
            except Gone:
                continue
            except Exception as exc:  # the API server may be away: keep trying
                if not self._stop.is_set():
                    log.warning("following %s failed, listing again: %s", self.selector, exc)
                    self._stop.wait(RETRY_SECONDS)

    # ------------------------------------------------------------------ list
    def _pages(self, scope: str | None) -> Iterator[tuple[list[dict[str, Any]], str]]:
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"label_selector": self.selector, "limit": self.page}
            if token:
                kw["_continue"] = token
            resp = self.listers[scope](_preload_content=False, **kw)
            doc = json.loads(resp.data)
            meta = doc.get("metadata") or {}
            yield doc.get("items") or [], str(meta.get("resourceVersion") or "")
            token = meta.get("continue")
            if not token:
                return

    def _relist(self, scope: str | None) -> str:
        seen: dict[str, tuple[Key, S]] = {}
        version = ""
        try:
            for items, page_version in self._pages(scope):
                version = page_version  # the last page's is the list's
                for obj in items:
                    key = self.key(obj)
                    if key is not None:
                        seen[obj["metadata"]["uid"]] = (key, self.parse(obj))
        except ApiException as exc:
            if exc.status == 410:  # the continue token expired: list from the start
                raise Gone from exc
            raise
        changed: set[Key] = set()
        with self._lock:
            first = scope not in self._listed
            for uid, (s, key) in list(self._where.items()):
                if s == scope and uid not in seen:
                    self._drop(uid)
                    changed.add(key)
            for uid, (key, state) in seen.items():
                if self._put(scope, uid, key, state):
                    changed.add(key)
            self._listed.add(scope)
            if self._listed >= set(self.listers):
                self.synced.set()
        if not first:
            for key in changed:
                self.on_change(key)
        return version

    # ------------------------------------------------------------------ watch
    def _watch(self, scope: str | None, version: str) -> str:
        resp = self.listers[scope](
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
            label_selector=self.selector,
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
        )
        self._responses[scope] = resp
        try:
            for line in _lines(resp):
                if self._stop.is_set():
                    break
                if line:
                    version = self._event(scope, json.loads(line), version)
        finally:
            self._responses.pop(scope, None)
            resp.release_conn()
        return version

    def _event(self, scope: str | None, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise RuntimeError(f"watch error: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return version
        uid = meta.get("uid")
        if not uid:
            return version
        key = self.key(obj)
        with self._lock:
            old = self._where.get(uid)
            changed = self._drop(uid) if old and (kind == "DELETED" or old[1] != key) else False
            if kind != "DELETED" and key is not None:
                changed = self._put(scope, uid, key, self.parse(obj)) or changed
        if changed:
            for k in {k for k in (old[1] if old else None, key) if k is not None}:
                self.on_change(k)
        return version

    # ------------------------------------------------------------------ store (under _lock)
    def _put(self, scope: str | None, uid: str, key: Key, state: S) -> bool:
        group = self._groups.setdefault(key, {})
        before = group.get(uid)
        group[uid] = state
        self._where[uid] = (scope, key)
        self._namespaces.setdefault(key[0], set()).add(key)
        return before != state

    def _drop(self, uid: str) -> bool:
        scope_key = self._where.pop(uid, None)
        if scope_key is None:
            return False
        group = self._groups.get(scope_key[1], {})
        group.pop(uid, None)
        if not group:
            key = scope_key[1]
            self._groups.pop(key, None)
            keys = self._namespaces.get(key[0], set())
            keys.discard(key)
            if not keys:
                self._namespaces.pop(key[0], None)
        return True
