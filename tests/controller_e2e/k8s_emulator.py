#!/usr/bin/env python3
"""A loopback Kubernetes API emulator for the controller end-to-end tests.

Usage (from the venv that has ``kmock==0.8`` installed)::

    python tests/controller_e2e/k8s_emulator.py /tmp/e2e/kubeconfig [--port 0] [-v]

It listens on 127.0.0.1 only, writes a kubeconfig pointing at ``http://127.0.0.1:<port>``
(no TLS; a dummy bearer token that is never checked), prints ``READY <port>`` on stdout and
serves until SIGTERM/SIGINT (or until stdin closes, with ``--exit-with-stdin``).

The HTTP plumbing, request parsing, discovery (``/``, ``/version``, ``/api``, ``/apis``,
``/apis/<group>[/<version>]``) and ``Status`` error rendering come from kmock's
``KubernetesEmulator``. kmock 0.8's own object store is NOT used for the registered resources:
it has no resourceVersion/uid/creationTimestamp, does not fill ``metadata.namespace`` (so
namespaced watches never see created objects), ignores label selectors and watch
``resourceVersion``, treats every PATCH body as a merge, has no PUT, no server-side apply, no
status subresource, and its error reasons (``Object Already Exists``) are not the Kubernetes ones
kube-rs checks (``AlreadyExists``). ``Emulator._handle`` below replaces that store for the
registered resources with one that implements these semantics (see ``Store``):

* uid, creationTimestamp, generation (custom resources: bumped on non-metadata/status changes),
  one cluster-wide monotonically increasing resourceVersion; no-op writes do not bump it;
* create (201; generateName; 409 AlreadyExists; namespace mismatch 400; dryRun=All),
  get, list (labelSelector, fieldSelector metadata.name/metadata.namespace, limit/continue,
  resourceVersion/resourceVersionMatch), DELETE of one object and of a collection;
* optimistic concurrency: stale metadata.resourceVersion on PUT / merge patch / apply / JSON
  patch and DeleteOptions.preconditions -> 409 Conflict;
* PATCH: application/merge-patch+json (RFC 7386), application/json-patch+json (RFC 6902, with
  the API server's leniency that ``test`` of a missing path against ``null`` passes; failures
  -> 422), application/apply-patch+yaml (server-side apply, see ``_apply``);
  application/strategic-merge-patch+json -> 415 (as the API server does for custom resources;
  it is NOT emulated for built-in kinds either);
* managedFields (FieldsV1) per field manager (``fieldManager`` or the User-Agent product,
  ``unknown`` for kube-rs, which sends none); Secrets fold write-only ``stringData`` into ``data``;
* PUT replace; ``/status`` subresource for the custom resources (writes to the main resource
  keep the stored status, writes to ``/status`` change only status);
* finalizers: DELETE sets deletionTimestamp (202) while finalizers remain; the update that
  removes the last one deletes the object (one DELETED watch event); new finalizers cannot be
  added while deleting (422);
* watch: ``resourceVersion`` (replays retained history after it; ``0``/unset start with
  synthetic ADDED for current objects; too old -> ERROR 410 Expired), label/field selectors
  (with ADDED/DELETED on selector transitions), ``allowWatchBookmarks`` (periodic BOOKMARK),
  ``sendInitialEvents`` + ``resourceVersionMatch=NotOlderThan`` (initial ADDED then the
  ``k8s.io/initial-events-end`` bookmark), ``timeoutSeconds``;
* a minimal garbage collector: when an owner is gone, dependents whose ownerReferences no
  longer point at any live object are deleted (background propagation; ``Orphan`` removes the
  owner reference instead; ``Foreground`` is treated as background).

Known gaps (not emulated): authn/authz, admission, OpenAPI/CEL/schema validation and defaulting,
namespace existence and ``/api/v1/namespaces`` (kmock 0.8's path parser crashes on it -> 500),
strategic merge patch, list-type=map/set merging in server-side apply (all lists are atomic),
snapshot-consistent pagination, core/v1 and events.k8s.io/v1 Events are separate stores,
graceful deletion periods, protobuf, HTTP/2, watch-cache quirks.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import datetime
import json
import os
import re
import signal
import sys
import uuid
from collections import deque
from typing import Any

import aiohttp.web
import jsonpatch
import jsonpointer
import kmock

try:  # Only for apply-patch bodies that are YAML rather than JSON; kube-rs always sends JSON.
    import yaml  # type: ignore
except ImportError:  # pragma: no cover
    yaml = None


class Res:
    """A served resource: group/version/plural plus what the server must know about it."""

    def __init__(self, group: str, version: str, plural: str, kind: str, *,
                 namespaced: bool = True, status: bool = False, generation: bool = False,
                 singular: str | None = None) -> None:
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.status, self.generation = namespaced, status, generation
        self.singular = singular or kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)


DEFAULT_RESOURCES = [
    # Custom resources: status subresource on, generation tracked (as for any CRD).
    Res('infra.example.com', 'v1alpha1', 'baremetalhostgenerators', 'BareMetalHostGenerator',
        status=True, generation=True),
    Res('metal3.io', 'v1alpha1', 'baremetalhosts', 'BareMetalHost', status=True, generation=True),
    # assisted-service declares +kubebuilder:subresource:status on NMStateConfig (it has no status).
    Res('agent-install.openshift.io', 'v1beta1', 'nmstateconfigs', 'NMStateConfig',
        status=True, generation=True),
    Res('', 'v1', 'secrets', 'Secret'),
    Res('', 'v1', 'configmaps', 'ConfigMap'),
    Res('', 'v1', 'events', 'Event'),
    Res('events.k8s.io', 'v1', 'events', 'Event'),
    Res('coordination.k8s.io', 'v1', 'leases', 'Lease'),
]

NAME_RE = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
SERVER_META = ('uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
               'deletionGracePeriodSeconds', 'managedFields', 'selfLink')
UNOWNED = {('apiVersion',), ('kind',), ('metadata', 'name'), ('metadata', 'namespace'),
           ('metadata', 'generateName')} | {('metadata', f) for f in SERVER_META}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def now_str() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


# ---------------------------------------------------------------------------------------------
# Field paths (tuples of keys; lists are atomic leaves) for managedFields / server-side apply.

def leaf_paths(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    out: dict[tuple, Any] = {}
    if isinstance(obj, dict) and (obj or not prefix):
        for k, v in obj.items():
            out.update(leaf_paths(v, prefix + (k,)))
    else:
        out[prefix] = obj
    return {p: v for p, v in out.items() if p and not any(p[:len(u)] == u for u in UNOWNED)}


def get_path(obj: Any, path: tuple) -> tuple[bool, Any]:
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return False, None
        obj = obj[k]
    return True, obj


def set_path(obj: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        if not isinstance(obj.get(k), dict):
            obj[k] = {}
        obj = obj[k]
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj: dict, path: tuple) -> None:
    parents = []
    for k in path[:-1]:
        if not isinstance(obj.get(k), dict):
            return
        parents.append((obj, k))
        obj = obj[k]
    obj.pop(path[-1], None)
    for parent, k in reversed(parents):  # drop maps that the removal left empty
        if parent[k] == {}:
            del parent[k]
        else:
            break


def overlaps(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def fields_v1(paths: set[tuple]) -> dict:
    out: dict = {}
    for p in sorted(paths):
        node = out
        for k in p:
            node = node.setdefault(f"f:{k}", {})
    return out


def fold_string_data(res: "Res", obj: dict) -> None:
    """Secrets: the API server merges write-only ``stringData`` into ``data`` (base64) on every write."""
    if res.group == '' and res.kind == 'Secret' and isinstance(obj.get('stringData'), dict):
        data = obj.get('data') if isinstance(obj.get('data'), dict) else {}
        for k, v in obj.pop('stringData').items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj['data'] = data


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def json_patch(doc: dict, ops: list) -> dict:
    """RFC 6902, op by op, with the API server's (evanphx/json-patch) leniency:
    ``test`` of a missing path against ``null`` succeeds (kube-rs' finalizer helper relies on it)."""
    for op in ops:
        if not isinstance(op, dict) or 'op' not in op or 'path' not in op:
            raise ApiError(422, 'Invalid', f"invalid JSON patch operation: {op!r}")
        if op['op'] == 'test' and op.get('value') is None:
            try:
                jsonpointer.resolve_pointer(doc, op['path'])
            except jsonpointer.JsonPointerException:
                continue  # a missing path "equals" null
        try:
            doc = jsonpatch.apply_patch(doc, [op], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError) as e:
            raise ApiError(422, 'Invalid', f"the server rejected our request due to an error in our request: {e}")
    return doc


# ---------------------------------------------------------------------------------------------
# Selectors.

SEL_RE = re.compile(r'\s*(!?)\s*([A-Za-z0-9._/-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$')


def parse_label_selector(s: str | None) -> list:
    if not s:
        return []
    reqs, depth, cur = [], 0, ''
    for ch in s:  # split on commas outside parentheses
        depth += ch == '('
        depth -= ch == ')'
        if ch == ',' and depth == 0:
            reqs.append(cur)
            cur = ''
        else:
            cur += ch
    reqs.append(cur)
    out = []
    for r in reqs:
        m = SEL_RE.match(r)
        if not m or (m.group(1) and (m.group(3) or m.group(5))):
            raise ApiError(400, 'BadRequest', f"unable to parse requirement: {r!r} in labelSelector {s!r}")
        neg, key, op, val, setop, vals = m.groups()
        if op:
            out.append((key, '!=' if op == '!=' else '=', {val}))
        elif setop:
            out.append((key, setop, {v.strip() for v in vals.split(',') if v.strip()}))
        else:
            out.append((key, '!' if neg else 'exists', set()))
    return out


def parse_field_selector(s: str | None, res: Res) -> list:
    out = []
    for r in filter(None, (s or '').split(',')):
        m = re.match(r'^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$', r)
        allowed = {'metadata.name', 'metadata.namespace'} | ({'type'} if res.kind == 'Secret' else set())
        if not m or m.group(1) not in allowed:
            raise ApiError(400, 'BadRequest', f'"{r}" is not a known field selector: only {sorted(allowed)}')
        out.append((tuple(m.group(1).split('.')), m.group(2) != '!=', m.group(3)))
    return out


def matches(obj: dict, labels_sel: list, fields_sel: list) -> bool:
    labels = obj.get('metadata', {}).get('labels') or {}
    for key, op, vals in labels_sel:
        ok = {'=': lambda: labels.get(key) in vals and key in labels,
              '!=': lambda: key not in labels or labels[key] not in vals,
              'in': lambda: key in labels and labels[key] in vals,
              'notin': lambda: key not in labels or labels[key] not in vals,
              'exists': lambda: key in labels,
              '!': lambda: key not in labels}[op]()
        if not ok:
            return False
    for path, eq, val in fields_sel:
        found, cur = get_path(obj, path)
        if ((cur if found else '') == val) != eq:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The store.

class Store:
    def __init__(self, history_limit: int) -> None:
        self.rv = 1  # like an etcd revision: never "0", which means "any" to the API
        self.objects: dict[tuple, dict] = {}          # (res.key, ns, name) -> object
        self.managed: dict[tuple, dict[tuple, set]] = {}  # same key -> {(manager, op, sub): paths}
        self.ftime: dict[tuple, dict[tuple, str]] = {}
        self.history: deque = deque(maxlen=history_limit)  # (rv, res.key, type, obj, old)
        self.subscribers: set[asyncio.Queue] = set()
        self.by_key: dict[tuple, Res] = {}

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def publish(self, res: Res, etype: str, obj: dict, old: dict | None) -> None:
        ev = (int(obj['metadata']['resourceVersion']), res.key, etype, obj, old)
        self.history.append(ev)
        for q in self.subscribers:
            q.put_nowait(ev)

    def oldest_replayable(self) -> int:
        """Watches from an RV below this cannot be replayed (410 Expired)."""
        if self.history.maxlen and len(self.history) == self.history.maxlen:
            return self.history[0][0]
        return 0

    def render_managed(self, key: tuple, obj: dict, res: Res) -> None:
        entries = []
        for (mgr, op, sub), paths in sorted(self.managed.get(key, {}).items()):
            if paths:
                e = {'manager': mgr, 'operation': op, 'apiVersion': res.api_version,
                     'time': self.ftime[key][(mgr, op, sub)], 'fieldsType': 'FieldsV1',
                     'fieldsV1': fields_v1(paths)}
                if sub:
                    e['subresource'] = sub
                entries.append(e)
        if entries:
            obj['metadata']['managedFields'] = entries
        else:
            obj['metadata'].pop('managedFields', None)

    def record_update(self, key: tuple, old: dict | None, new: dict, mgr: str, sub: str) -> None:
        """Ownership for non-apply writes: the writer owns what it changed; removed fields are unowned."""
        before = leaf_paths(old or {})
        after = leaf_paths(new)
        changed = {p for p, v in after.items() if p not in before or before[p] != v}
        removed = set(before) - set(after)
        self.take(key, changed, removed, (mgr, 'Update', sub))

    def take(self, key: tuple, paths: set, removed: set, owner: tuple, strip: set | None = None) -> None:
        """``owner`` now owns ``paths`` (Apply: exactly these); other owners lose ``strip`` (default:
        ``paths``; an apply that sets a value another manager already has shares ownership) and
        everybody loses ``removed``."""
        managed = self.managed.setdefault(key, {})
        times = self.ftime.setdefault(key, {})
        strip = paths if strip is None else strip
        for other, owned in managed.items():
            if other != owner:
                owned -= {q for q in owned if any(overlaps(q, p) for p in strip | removed)}
        if owner[1] == 'Apply':
            managed[owner] = set(paths)
        else:
            cur = managed.setdefault(owner, set())
            cur -= {q for q in cur if any(overlaps(q, p) for p in removed)}
            cur |= paths
        for k in [k for k, v in managed.items() if not v]:
            del managed[k]
            times.pop(k, None)
        if owner in managed:
            times[owner] = now_str()


def status(code: int, reason: str, message: str, **details: Any) -> dict:
    body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {},
            'status': 'Success' if code < 400 else 'Failure',
            'message': message, 'reason': reason, 'code': code}
    if details:
        body['details'] = details
    return body


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the registered resources served by ``Store`` (see module doc)."""

    def setup(self, resources: list[Res], *, history_limit: int, bookmark_interval: float,
              default_watch_timeout: float, verbose: bool) -> None:
        self.store = Store(history_limit)
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.verbose = verbose
        self.stopping = asyncio.Event()
        for r in resources:
            self.store.by_key[r.key] = r
            verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
            self.resources[kmock.resource(r.group, r.version, r.plural)] = kmock.ResourceInfo(
                kind=r.kind, singular=r.singular, namespaced=r.namespaced, verbs=verbs,
                subresources={'status'} if r.status else set())

    # kmock 0.8 renders the core group as "/v1"; the API server says "v1".
    async def _serve_version(self, request):  # type: ignore[override]
        result = await super()._serve_version(request)
        if isinstance(result, dict) and result.get('groupVersion', '').startswith('/'):
            result['groupVersion'] = result['groupVersion'][1:]
        return result

    async def _handle(self, request):  # type: ignore[override]
        r = request.resource
        if r is None or r.plural is None:  # not a resource URL: discovery, /version, etc.
            return await super()._handle(request)
        res = self.store.by_key.get((r.group, r.version, r.plural))
        try:
            if res is None:
                raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
            resp = await self._serve(request, res)
        except ApiError as e:
            resp = aiohttp.web.json_response(status(e.code, e.reason, e.message, **e.details), status=e.code)
        except Exception as e:  # a bug here must not look like a valid answer
            resp = aiohttp.web.json_response(status(500, 'InternalError', repr(e)), status=500)
        if self.verbose:
            print(f"{request.method.value} {request.url.path_qs} -> {resp.status}", file=sys.stderr, flush=True)
        return resp

    # -----------------------------------------------------------------------------------------

    async def _serve(self, request, res: Res) -> aiohttp.web.StreamResponse:
        method, ns, name, sub = request.method.value, request.namespace, request.name, request.subresource
        q = request.params
        if res.namespaced is False:
            ns = None
        if sub not in (None, 'status') or (sub == 'status' and not res.status):
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if res.namespaced and ns is None and method not in ('GET',):
            raise ApiError(405, 'MethodNotAllowed', f"{method} on all namespaces is not supported")
        if method == 'GET' and q.get('watch') in ('true', '1'):
            return await self._watch(request, res, ns, name)
        if method == 'GET' and name is None:
            return aiohttp.web.json_response(self._list(res, ns, q))
        if method == 'GET':
            return aiohttp.web.json_response(self._get(res, ns, name))
        if method == 'POST' and name is None:
            return aiohttp.web.json_response(self._create(request, res, ns), status=201)
        if method == 'DELETE' and name is None:
            return aiohttp.web.json_response(self._delete_collection(request, res, ns))
        if method == 'DELETE':
            code, body = self._delete(request, res, ns, name)
            return aiohttp.web.json_response(body, status=code)
        if method == 'PUT' and name is not None:
            return aiohttp.web.json_response(self._replace(request, res, ns, name, sub or ''))
        if method == 'PATCH' and name is not None:
            code, body = self._patch(request, res, ns, name, sub or '')
            return aiohttp.web.json_response(body, status=code)
        raise ApiError(405, 'MethodNotAllowed', f"{method} is not allowed here")

    def _err_details(self, res: Res, name: str | None) -> dict:
        return {'name': name or '', 'group': res.group, 'kind': res.plural}

    def _not_found(self, res: Res, name: str) -> ApiError:
        gr = f"{res.plural}.{res.group}" if res.group else res.plural
        return ApiError(404, 'NotFound', f'{gr} "{name}" not found', **self._err_details(res, name))

    def _conflict(self, res: Res, name: str) -> ApiError:
        gr = f"{res.plural}.{res.group}" if res.group else res.plural
        return ApiError(409, 'Conflict', f'Operation cannot be fulfilled on {gr} "{name}": the object has been '
                        'modified; please apply your changes to the latest version and try again',
                        **self._err_details(res, name))

    def _body(self, request, kind: type = dict) -> Any:
        data = request.data
        if request.body and data is None:
            ctype = request.headers.get('Content-Type', '')
            if 'yaml' in ctype and yaml is not None:
                try:
                    data = yaml.safe_load(request.text)
                except yaml.YAMLError as e:
                    raise ApiError(400, 'BadRequest', f"invalid YAML body: {e}")
            elif 'yaml' in ctype:
                raise ApiError(415, 'UnsupportedMediaType',
                               'YAML bodies need PyYAML in the emulator venv; send JSON (valid YAML) instead')
            else:
                raise ApiError(400, 'BadRequest', 'the request body is not valid JSON')
        if not isinstance(data, kind):
            raise ApiError(400, 'BadRequest', f"the request body must be a JSON {kind.__name__}")
        return data

    def _manager(self, request, required: bool = False) -> str:
        mgr = request.params.get('fieldManager')
        if mgr:
            return mgr
        if required:
            raise ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                           'Required value: is required for apply patch')
        return (request.headers.get('User-Agent') or 'unknown').split('/')[0] or 'unknown'

    def _dry_run(self, request, body: dict | None = None) -> bool:
        if request.params.get('dryRun') == 'All':
            return True
        return isinstance(body, dict) and 'All' in (body.get('dryRun') or [])

    def _check_types(self, res: Res, obj: dict) -> None:
        api_version, kind = obj.get('apiVersion'), obj.get('kind')
        if (api_version and api_version != res.api_version) or (kind and kind != res.kind):
            raise ApiError(400, 'BadRequest', f"the API version/kind in the data ({api_version}/{kind}) does not "
                           f"match the expected API version/kind ({res.api_version}/{res.kind})")

    def _key(self, res: Res, ns: str | None, name: str) -> tuple:
        return (res.key, ns if res.namespaced else None, name)

    # -----------------------------------------------------------------------------------------

    def _get(self, res: Res, ns: str | None, name: str) -> dict:
        obj = self.store.objects.get(self._key(res, ns, name))
        if obj is None:
            raise self._not_found(res, name)
        return obj

    def _selected(self, res: Res, ns: str | None, lsel: list, fsel: list) -> list[tuple]:
        return sorted(k for k, o in self.store.objects.items()
                      if k[0] == res.key and (ns is None or k[1] == ns) and matches(o, lsel, fsel))

    def _list(self, res: Res, ns: str | None, q: dict) -> dict:
        lsel = parse_label_selector(q.get('labelSelector'))
        fsel = parse_field_selector(q.get('fieldSelector'), res)
        rv, match, cont = q.get('resourceVersion'), q.get('resourceVersionMatch'), q.get('continue')
        if match and not rv:
            raise ApiError(422, 'Invalid', 'resourceVersionMatch is forbidden unless resourceVersion is provided')
        if rv and rv != '0' and not cont:
            if not rv.isdigit():
                raise ApiError(400, 'BadRequest', f"invalid resource version: {rv}")
            if match == 'Exact' and int(rv) != self.store.rv:
                raise ApiError(410, 'Expired', f"too old resource version: {rv} ({self.store.rv}); "
                               "the emulator keeps no snapshots")
            if int(rv) > self.store.rv:
                raise ApiError(504, 'Timeout', f"Too large resource version: {rv}, current: {self.store.rv}")
        keys = self._selected(res, ns, lsel, fsel)
        list_rv, meta = str(self.store.rv), {}
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont))
                after, list_rv = tuple(token['after']), token['rv']
            except Exception:
                raise ApiError(400, 'BadRequest', 'invalid continue token')
            keys = [k for k in keys if (k[1] or '', k[2]) > (after[0], after[1])]
        limit = int(q['limit']) if q.get('limit', '').isdigit() and int(q['limit']) > 0 else None
        if limit is not None and rv != '0' and len(keys) > limit:  # like the API server, RV=0 ignores limit
            keys, rest = keys[:limit], len(keys) - limit
            last = keys[-1]
            meta['continue'] = base64.urlsafe_b64encode(json.dumps(
                {'after': [last[1] or '', last[2]], 'rv': list_rv}).encode()).decode()
            meta['remainingItemCount'] = rest
        meta['resourceVersion'] = list_rv
        return {'apiVersion': res.api_version, 'kind': f"{res.kind}List", 'metadata': meta,
                'items': [self.store.objects[k] for k in keys]}

    def _create(self, request, res: Res, ns: str | None) -> dict:
        obj = copy.deepcopy(self._body(request))
        self._check_types(res, obj)
        meta = obj.setdefault('metadata', {})
        if not isinstance(meta, dict):
            raise ApiError(400, 'BadRequest', 'metadata must be an object')
        if res.namespaced:
            if meta.get('namespace') not in (None, '', ns):
                raise ApiError(400, 'BadRequest', 'the namespace of the provided object does not match '
                               'the namespace sent on the request')
            meta['namespace'] = ns
        if not meta.get('name'):
            if not meta.get('generateName'):
                raise ApiError(422, 'Invalid', f'{res.kind} "" is invalid: metadata.name: Required value: '
                               'name or generateName is required', **self._err_details(res, ''))
            for _ in range(100):
                meta['name'] = meta['generateName'] + uuid.uuid4().hex[:5]
                if self._key(res, ns, meta['name']) not in self.store.objects:
                    break
        name = meta['name']
        if not isinstance(name, str) or len(name) > 253 or not NAME_RE.match(name):
            raise ApiError(422, 'Invalid', f'{res.kind} "{name}" is invalid: metadata.name: Invalid value: '
                           'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '
                           "'-' or '.'", **self._err_details(res, str(name)))
        key = self._key(res, ns, name)
        if key in self.store.objects:
            gr = f"{res.plural}.{res.group}" if res.group else res.plural
            raise ApiError(409, 'AlreadyExists', f'{gr} "{name}" already exists', **self._err_details(res, name))
        return self._commit_create(request, res, key, obj, self._manager(request), 'Update')

    def _commit_create(self, request, res: Res, key: tuple, obj: dict, mgr: str, op: str,
                       owned: set | None = None) -> dict:
        meta = obj['metadata']
        fold_string_data(res, obj)
        for f in SERVER_META:
            meta.pop(f, None)
        if res.status:
            obj.pop('status', None)
        obj['apiVersion'], obj['kind'] = res.api_version, res.kind
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = now_str()
        if res.generation:
            meta['generation'] = 1
        if self._dry_run(request):
            meta['resourceVersion'] = str(self.store.rv)
            return obj
        if op == 'Apply':
            self.store.take(key, owned or set(), set(), (mgr, 'Apply', ''))
        else:
            self.store.record_update(key, None, obj, mgr, '')
        self.store.render_managed(key, obj, res)
        meta['resourceVersion'] = self.store.next_rv()
        self.store.objects[key] = obj
        self.store.publish(res, 'ADDED', obj, None)
        return obj

    def _commit_update(self, request, res: Res, key: tuple, old: dict, new: dict, sub: str,
                       mgr: str, op: str, owned: set | None = None, removed: set | None = None) -> dict:
        """Common tail of PUT/PATCH/apply: scope to main/status, keep server fields, bump versions."""
        new = copy.deepcopy(new)
        if not isinstance(new, dict) or not isinstance(new.get('metadata', {}), dict):
            raise ApiError(422, 'Invalid', 'the patched object is not a valid object')
        fold_string_data(res, new)
        if res.status and sub == 'status':  # /status changes only status
            scoped = copy.deepcopy(old)
            scoped.pop('status', None)
            if new.get('status') is not None:
                scoped['status'] = new['status']
            new = scoped
        elif res.status:  # the main resource keeps the stored status
            new.pop('status', None)
            if 'status' in old:
                new['status'] = copy.deepcopy(old['status'])
        meta, ometa = new.setdefault('metadata', {}), old['metadata']
        for f in ('name', 'namespace'):
            if meta.get(f, ometa.get(f)) != ometa.get(f):
                raise ApiError(422, 'Invalid', f'{res.kind} "{ometa["name"]}" is invalid: metadata.{f}: '
                               'field is immutable', **self._err_details(res, ometa['name']))
            if f in ometa:
                meta[f] = ometa[f]
        for f in SERVER_META:
            meta.pop(f, None)
            if f in ometa:
                meta[f] = copy.deepcopy(ometa[f])
        new['apiVersion'], new['kind'] = res.api_version, res.kind
        if ometa.get('deletionTimestamp'):
            added = set(meta.get('finalizers') or []) - set(ometa.get('finalizers') or [])
            if added:
                raise ApiError(422, 'Forbidden', f'{res.kind} "{ometa["name"]}" is invalid: metadata.finalizers: '
                               f'Forbidden: no new finalizers can be added if the object is being deleted, '
                               f'found new finalizers {sorted(added)}', **self._err_details(res, ometa['name']))
        if res.generation:
            strip = lambda o: {k: v for k, v in o.items() if k not in ('metadata', 'status')}
            if strip(new) != strip(old):
                meta['generation'] = int(ometa.get('generation', 1)) + 1
        if self._dry_run(request):
            return new
        saved_managed = copy.deepcopy(self.store.managed.get(key, {}))
        saved_times = dict(self.store.ftime.get(key, {}))
        if op == 'Apply':
            before, after = leaf_paths(old), leaf_paths(new)
            taken = {p for p in owned or set() if before.get(p, ...) != after.get(p, ...)}
            self.store.take(key, owned or set(), removed or set(), (mgr, 'Apply', sub), strip=taken)
        else:
            self.store.record_update(key, old, new, mgr, sub)
        if self.store.managed.get(key, {}) == saved_managed:
            self.store.ftime[key] = saved_times  # unchanged ownership keeps its timestamps
        self.store.render_managed(key, new, res)
        if new == old:  # a no-op write: no new resourceVersion, no watch event
            return old
        if meta.get('deletionTimestamp') and not meta.get('finalizers'):
            meta['resourceVersion'] = self.store.next_rv()
            self._remove(res, key, new)
            return new
        meta['resourceVersion'] = self.store.next_rv()
        self.store.objects[key] = new
        self.store.publish(res, 'MODIFIED', new, old)
        return new

    def _replace(self, request, res: Res, ns: str | None, name: str, sub: str) -> dict:
        body = self._body(request)
        self._check_types(res, body)
        key = self._key(res, ns, name)
        old = self.store.objects.get(key)
        if old is None:
            raise self._not_found(res, name)
        bmeta = body.get('metadata') or {}
        if bmeta.get('name') not in (None, name):
            raise ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        if bmeta.get('resourceVersion') and bmeta['resourceVersion'] != old['metadata']['resourceVersion']:
            raise self._conflict(res, name)
        return self._commit_update(request, res, key, old, body, sub, self._manager(request), 'Update')

    def _patch(self, request, res: Res, ns: str | None, name: str, sub: str) -> tuple[int, dict]:
        ctype = (request.headers.get('Content-Type') or '').split(';')[0].strip().lower()
        key = self._key(res, ns, name)
        old = self.store.objects.get(key)
        if ctype == 'application/apply-patch+yaml':
            return self._apply(request, res, ns, name, sub, key, old)
        if old is None:
            raise self._not_found(res, name)
        if ctype == 'application/merge-patch+json':
            body = self._body(request)
            rv = (body.get('metadata') or {}).get('resourceVersion') if isinstance(body.get('metadata'), dict) else None
            if rv and rv != old['metadata']['resourceVersion']:
                raise self._conflict(res, name)
            new = merge_patch(old, body)
        elif ctype == 'application/json-patch+json':
            new = json_patch(copy.deepcopy(old), self._body(request, list))
            rv = (new.get('metadata') or {}).get('resourceVersion') if isinstance(new, dict) else None
            if rv != old['metadata']['resourceVersion'] and rv is not None:
                raise self._conflict(res, name)
        elif ctype == 'application/strategic-merge-patch+json':
            raise ApiError(415, 'UnsupportedMediaType', 'strategic merge patch is not emulated '
                           '(the API server rejects it for custom resources too); use merge or apply')
        else:
            raise ApiError(415, 'UnsupportedMediaType', f'the body of the request was in an unknown format - '
                           f'accepted media types include: application/json-patch+json, '
                           f'application/merge-patch+json, application/apply-patch+yaml (got {ctype!r})')
        return 200, self._commit_update(request, res, key, old, new, sub, self._manager(request), 'Update')

    def _apply(self, request, res: Res, ns: str | None, name: str, sub: str, key: tuple,
               old: dict | None) -> tuple[int, dict]:
        """Server-side apply. Ownership is tracked per leaf field (lists are atomic); fields this manager
        applied before and omits now are removed unless another manager also owns them; values owned by
        another manager conflict (409) unless force=true, which takes them over."""
        mgr = self._manager(request, required=True)
        force = request.params.get('force') == 'true'
        cfg = self._body(request)
        if not cfg.get('apiVersion') or not cfg.get('kind'):
            raise ApiError(400, 'BadRequest', 'apiVersion and kind must be set in an apply configuration')
        self._check_types(res, cfg)
        cmeta = cfg.get('metadata') if isinstance(cfg.get('metadata'), dict) else {}
        if cmeta.get('name') not in (None, name):
            raise ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        if res.namespaced and cmeta.get('namespace') not in (None, '', ns):
            raise ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the '
                           'namespace sent on the request')
        if res.status and sub == 'status':
            scoped = {'status': cfg['status']} if 'status' in cfg else {}
        else:
            scoped = {k: v for k, v in cfg.items() if not (res.status and k == 'status')}
        scoped = copy.deepcopy(scoped)
        fold_string_data(res, scoped)  # so ownership is recorded on data.<key>
        applied = leaf_paths(scoped)
        if old is None:
            if sub == 'status':
                raise self._not_found(res, name)
            obj = copy.deepcopy(scoped)
            obj.setdefault('metadata', {})['name'] = name
            if res.namespaced:
                obj['metadata']['namespace'] = ns
            return 201, self._commit_create(request, res, key, obj, mgr, 'Apply', set(applied))
        if cmeta.get('resourceVersion') and cmeta['resourceVersion'] != old['metadata']['resourceVersion']:
            raise self._conflict(res, name)
        current = leaf_paths(old)
        conflicts = []
        for (omgr, _op, _sub), owned in self.store.managed.get(key, {}).items():
            if omgr == mgr:
                continue
            for p in owned:
                for a in applied:
                    if overlaps(p, a):
                        fa, va = get_path(scoped, p if len(p) >= len(a) else a)
                        fo, vo = get_path(old, p if len(p) >= len(a) else a)
                        if (fa, va) != (fo, vo):
                            conflicts.append((omgr, '.' + '.'.join(p)))
        if conflicts and not force:
            conflicts = sorted(set(conflicts))
            raise ApiError(409, 'Conflict', f'Apply failed with {len(conflicts)} conflict(s): ' + '; '.join(
                f'conflict with "{m}": {f}' for m, f in conflicts),
                causes=[{'type': 'FieldManagerConflict', 'message': f'conflict with "{m}"', 'field': f}
                        for m, f in conflicts], **self._err_details(res, name))
        previously = self.store.managed.get(key, {}).get((mgr, 'Apply', sub), set())
        others = set().union(*[v for k, v in self.store.managed.get(key, {}).items() if k != (mgr, 'Apply', sub)])
        new = copy.deepcopy(old)
        dropped = set()
        for p in previously - set(applied):
            if not any(overlaps(p, a) for a in applied) and p not in others and p in current:
                del_path(new, p)
                dropped.add(p)
        for p, v in applied.items():
            set_path(new, p, v)
        return 200, self._commit_update(request, res, key, old, new, sub, mgr, 'Apply', set(applied), dropped)

    def _delete(self, request, res: Res, ns: str | None, name: str) -> tuple[int, dict]:
        key = self._key(res, ns, name)
        obj = self.store.objects.get(key)
        if obj is None:
            raise self._not_found(res, name)
        opts = request.data if isinstance(request.data, dict) else {}
        pre = opts.get('preconditions') or {}
        if pre.get('uid') and pre['uid'] != obj['metadata']['uid']:
            raise ApiError(409, 'Conflict', f'Precondition failed: UID in precondition: {pre["uid"]}, '
                           f'UID in object meta: {obj["metadata"]["uid"]}', **self._err_details(res, name))
        if pre.get('resourceVersion') and pre['resourceVersion'] != obj['metadata']['resourceVersion']:
            raise self._conflict(res, name)
        if self._dry_run(request, opts):
            return 200, obj
        policy = opts.get('propagationPolicy') or request.params.get('propagationPolicy')
        if obj['metadata'].get('deletionTimestamp'):
            return 202, obj
        if obj['metadata'].get('finalizers'):
            new = copy.deepcopy(obj)
            new['metadata']['deletionTimestamp'] = now_str()
            new['metadata']['deletionGracePeriodSeconds'] = 0
            new['metadata']['resourceVersion'] = self.store.next_rv()
            self.store.objects[key] = new
            self.store.publish(res, 'MODIFIED', new, obj)
            return 202, new
        final = copy.deepcopy(obj)
        final['metadata']['resourceVersion'] = self.store.next_rv()
        self._remove(res, key, final, orphan=(policy == 'Orphan'))
        return 200, final

    def _remove(self, res: Res, key: tuple, final: dict, orphan: bool = False) -> None:
        self.store.objects.pop(key, None)
        self.store.managed.pop(key, None)
        self.store.ftime.pop(key, None)
        self.store.publish(res, 'DELETED', final, None)
        asyncio.get_running_loop().call_soon(self._collect_garbage, final['metadata']['uid'], orphan)

    def _collect_garbage(self, owner_uid: str, orphan: bool) -> None:
        live = {o['metadata']['uid'] for o in self.store.objects.values()}
        for key, obj in list(self.store.objects.items()):
            refs = obj['metadata'].get('ownerReferences') or []
            if not any(r.get('uid') == owner_uid for r in refs) or key not in self.store.objects:
                continue
            res = self.store.by_key[key[0]]
            if orphan:
                new = copy.deepcopy(obj)
                new['metadata']['ownerReferences'] = [r for r in refs if r.get('uid') != owner_uid] or None
                if new['metadata']['ownerReferences'] is None:
                    del new['metadata']['ownerReferences']
                new['metadata']['resourceVersion'] = self.store.next_rv()
                self.store.objects[key] = new
                self.store.publish(res, 'MODIFIED', new, obj)
            elif not any(r.get('uid') in live for r in refs) and not obj['metadata'].get('deletionTimestamp'):
                if obj['metadata'].get('finalizers'):
                    new = copy.deepcopy(obj)
                    new['metadata']['deletionTimestamp'] = now_str()
                    new['metadata']['deletionGracePeriodSeconds'] = 0
                    new['metadata']['resourceVersion'] = self.store.next_rv()
                    self.store.objects[key] = new
                    self.store.publish(res, 'MODIFIED', new, obj)
                else:
                    final = copy.deepcopy(obj)
                    final['metadata']['resourceVersion'] = self.store.next_rv()
                    self._remove(res, key, final)

    def _delete_collection(self, request, res: Res, ns: str | None) -> dict:
        lsel = parse_label_selector(request.params.get('labelSelector'))
        fsel = parse_field_selector(request.params.get('fieldSelector'), res)
        items = []
        for key in self._selected(res, ns, lsel, fsel):
            code, body = self._delete(request, res, key[1], key[2])
            items.append(body)
        return {'apiVersion': res.api_version, 'kind': f"{res.kind}List",
                'metadata': {'resourceVersion': str(self.store.rv)}, 'items': items}

    # -----------------------------------------------------------------------------------------

    async def _watch(self, request, res: Res, ns: str | None, name: str | None) -> aiohttp.web.StreamResponse:
        q = request.params
        lsel = parse_label_selector(q.get('labelSelector'))
        fsel = parse_field_selector(q.get('fieldSelector'), res)
        if name is not None:  # the deprecated /<name>?watch=true form
            fsel.append((('metadata', 'name'), True, name))
        rv = q.get('resourceVersion') or ''
        bookmarks = q.get('allowWatchBookmarks') == 'true'
        initial_events = q.get('sendInitialEvents') == 'true'
        if initial_events and q.get('resourceVersionMatch') != 'NotOlderThan':
            raise ApiError(422, 'Invalid', 'sendInitialEvents is forbidden for watch unless '
                           'resourceVersionMatch is set to NotOlderThan')
        if q.get('resourceVersionMatch') and not initial_events:
            raise ApiError(422, 'Invalid', 'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided')
        if rv and not rv.isdigit():
            raise ApiError(400, 'BadRequest', f"invalid resource version: {rv}")
        timeout = float(q['timeoutSeconds']) if q.get('timeoutSeconds', '').isdigit() else self.default_watch_timeout

        sel = lambda o: o is not None and (ns is None or o['metadata'].get('namespace') == ns) and matches(o, lsel, fsel)
        queue: asyncio.Queue = asyncio.Queue()
        backlog: list[dict] = []
        # Snapshot and subscription happen without an await in between: nothing can slip through.
        start = self.store.rv
        if initial_events or rv in ('', '0'):
            for key in self._selected(res, ns, lsel, fsel):
                backlog.append({'type': 'ADDED', 'object': self.store.objects[key]})
            if initial_events:
                backlog.append({'type': 'BOOKMARK', 'object': self._bookmark(res, start, initial_end=True)})
        elif int(rv) < self.store.oldest_replayable():
            backlog.append({'type': 'ERROR', 'object': status(410, 'Expired', f'too old resource version: {rv} '
                                                              f'({self.store.oldest_replayable()})')})
        else:
            for ev in self.store.history:
                if ev[0] > int(rv) and ev[1] == res.key:
                    backlog.extend(self._translate(ev, sel))
        self.store.subscribers.add(queue)

        resp = aiohttp.web.StreamResponse(status=200, headers={'Content-Type': 'application/json'})
        try:
            await resp.prepare(request._raw_request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            last_bookmark = loop.time()
            for e in backlog:
                await resp.write(json.dumps(e).encode() + b'\n')
                if e['type'] == 'ERROR':
                    return resp
            transport = request._raw_request.transport
            while not self.stopping.is_set() and loop.time() < deadline:
                if transport is None or transport.is_closing():
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout=min(1.0, max(0.01, deadline - loop.time())))
                except asyncio.TimeoutError:
                    if bookmarks and loop.time() - last_bookmark >= self.bookmark_interval:
                        last_bookmark = loop.time()
                        bm = {'type': 'BOOKMARK', 'object': self._bookmark(res, self.store.rv)}
                        await resp.write(json.dumps(bm).encode() + b'\n')
                    continue
                if ev is None:  # the server is stopping
                    break
                if ev[1] != res.key or ev[0] <= start:
                    continue
                for e in self._translate(ev, sel):
                    await resp.write(json.dumps(e).encode() + b'\n')
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.store.subscribers.discard(queue)
        return resp

    @staticmethod
    def _translate(ev: tuple, sel) -> list[dict]:
        """One stored change as seen through a selector: entering it is ADDED, leaving it is DELETED."""
        _rv, _key, etype, obj, old = ev
        if etype == 'MODIFIED':
            now_in, was_in = sel(obj), sel(old)
            if now_in and was_in:
                return [{'type': 'MODIFIED', 'object': obj}]
            if now_in:
                return [{'type': 'ADDED', 'object': obj}]
            if was_in:
                return [{'type': 'DELETED', 'object': obj}]
            return []
        return [{'type': etype, 'object': obj}] if sel(obj) else []

    @staticmethod
    def _bookmark(res: Res, rv: int, initial_end: bool = False) -> dict:
        meta: dict = {'resourceVersion': str(rv)}
        if initial_end:
            meta['annotations'] = {'k8s.io/initial-events-end': 'true'}
        return {'apiVersion': res.api_version, 'kind': res.kind, 'metadata': meta}


def parse_extra_resource(spec: str) -> Res:
    """``group/version/plural=Kind[,status][,cluster]``; the core group is ``v1/plural=Kind``."""
    path, _, rest = spec.partition('=')
    kind, *flags = rest.split(',')
    parts = path.strip('/').split('/')
    group, version, plural = ('', *parts) if len(parts) == 2 else parts
    return Res(group, version, plural, kind, namespaced='cluster' not in flags,
               status='status' in flags, generation=bool(group))


def write_kubeconfig(path: str, port: int, namespace: str) -> None:
    text = (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: kmock\n"
        "  cluster:\n"
        f"    server: http://127.0.0.1:{port}\n"
        "contexts:\n"
        "- name: kmock\n"
        "  context:\n"
        "    cluster: kmock\n"
        "    user: kmock\n"
        f"    namespace: {namespace}\n"
        "current-context: kmock\n"
        "users:\n"
        "- name: kmock\n"
        "  user:\n"
        "    token: kmock-e2e-not-checked\n"
    )
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


async def amain(args: argparse.Namespace) -> None:
    resources = DEFAULT_RESOURCES + [parse_extra_resource(s) for s in args.resource]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_with_stdin:
        def _stdin_closed() -> None:
            if not sys.stdin.buffer.read1(65536):
                loop.remove_reader(sys.stdin.fileno())
                stop.set()
        loop.add_reader(sys.stdin.fileno(), _stdin_closed)

    emulator = Emulator()
    emulator.setup(resources, history_limit=args.history, bookmark_interval=args.bookmark_interval,
                   default_watch_timeout=args.watch_timeout, verbose=args.verbose)
    async with emulator, kmock.Server(emulator, host='127.0.0.1', port=args.port or None) as server:
        write_kubeconfig(args.kubeconfig, server.port, args.namespace)
        print(f"READY {server.port}", flush=True)
        await stop.wait()
        emulator.stopping.set()  # end open watches so that the server closes promptly
        for queue in emulator.store.subscribers:
            queue.put_nowait(None)
        await asyncio.sleep(0.2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('kubeconfig', help='where to write the kubeconfig that points at the emulator')
    p.add_argument('--port', type=int, default=0, help='TCP port on 127.0.0.1 (default: a free one)')
    p.add_argument('--namespace', default='default', help='the kubeconfig context namespace')
    p.add_argument('--resource', action='append', default=[], metavar='G/V/PLURAL=Kind[,status][,cluster]',
                   help='serve one more resource (repeatable); core group: v1/plural=Kind')
    p.add_argument('--history', type=int, default=100_000, help='watch events kept for resourceVersion replays')
    p.add_argument('--bookmark-interval', type=float, default=1.0, help='seconds between idle BOOKMARKs')
    p.add_argument('--watch-timeout', type=float, default=1800.0, help='watch length without timeoutSeconds')
    p.add_argument('--exit-with-stdin', action='store_true', help='also stop when stdin reaches EOF')
    p.add_argument('-v', '--verbose', action='store_true', help='log every resource request to stderr')
    asyncio.run(amain(p.parse_args()))


if __name__ == '__main__':
    main()
