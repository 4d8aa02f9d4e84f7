"""kopf's memory of the last handled spec, kept to a fixed size.

kopf stores what it last handled (its "diff base") to tell an update from a resume. Its
``AnnotationsDiffBaseStorage`` stores the whole spec plus the object's labels and annotations in
one annotation, and every annotation of an object together may hold 256 KiB
(``TotalAnnotationSizeLimitB`` in k8s.io/apimachinery ``pkg/api/validation/objectmeta.go``): a
spec the API server accepts (big ``extraArgs``/``env``, or a user's own large annotations) then
made every later patch fail with 422, forever.

The reconcile is level-triggered and never reads the diff, so the essence here is a digest of
the spec: 64 hex characters whatever the spec's size. A spec change still changes the digest,
which kopf sees as a change of the field ``spec`` (the update handlers watch that field).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf


def spec_digest(spec: Any) -> str:
    raw = json.dumps(spec or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


class SpecDigestStorage(kopf.AnnotationsDiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {"spec": spec_digest(body.get("spec"))})
