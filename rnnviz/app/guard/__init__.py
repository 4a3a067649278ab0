"""What every request to the explorer passes before Gradio reads it.

Gradio serves one app through many routes: a job can be sent to ``/gradio_api/queue/join`` (by
``fn_index``, as the page does), ``/gradio_api/call/<name>`` (a list of values),
``/gradio_api/call/v2/<name>`` (values by parameter name), or ``/gradio_api/run/<name>`` and
``/gradio_api/api/<name>`` (run directly, and there a ``fn_index`` in the body names the function
whatever the path says). Files arrive through ``/gradio_api/upload``, and the sketchpad's strokes
as images posted to ``/gradio_api/component_server`` (its ``accept_blobs``), kept in memory until a
job names them by ``id``. One ASGI middleware, ``RequestGuard``, sits before all of it:

- every POST is routed here first (``route_of``); a route this app does not use (streaming,
  recordings, the vibe editor, profiling, a login without auth, any path Gradio does not serve)
  is refused, and so is any method but GET/HEAD/OPTIONS/POST;
- a JSON body is read up to ``MAX_BODY`` bytes, its nesting measured before it is parsed
  (``json_depth``: a 5,000-deep array never reaches ``json.loads``), then parsed; anything that
  is not a JSON object is refused;
- a job request is mapped to its function and to one value per input whatever the route
  (``parse_job``): unknown endpoints, unknown keys, a wrong number of values, a queued function
  called past the queue (``/run/``), functions that have no server side (JavaScript only, unload)
  are refused; each value is checked against its component (``values.check_field``): a Radio or Dropdown
  string over ``MAX_CHOICE`` characters, any string over ``MAX_TEXT``, an integer of more than
  ``MAX_DIGITS`` digits, a value of a type the component cannot take, a file that is a URL or lies
  outside Gradio's upload folder, or lacks its ``meta``; a select event without its event data;
- the files and drawings a job names are summed (``FileBudget``): at most ``MAX_FILES`` files,
  ``MAX_REQUEST_BYTES`` bytes and ``MAX_REQUEST_PIXELS`` pixels (read from each image's header,
  never decoded) in one request, however many times it lists the same image;
- a client (an address: ``client_key``, the forwarded one only when ``Settings.forwarded_hops``
  says how many proxies to trust) has at most ``Settings.max_pending`` jobs waiting or running,
  whatever session ids and routes it uses, and a session at most ``MAX_PENDING_PER_ENDPOINT`` of
  one endpoint: beyond that a "busy" answer. The queue itself is made fair (``fair_get_events``):
  in each concurrency group the next job is the one of the client served least recently, one client
  runs at most half a group's slots (at least one), and while another client is present, one job
  at a time and new sessions at a slow rate: a flooding client delays another's job by at most the
  rest of one job of its own (in a group of one slot), or shares the CPU with it for that long;
- uploads to Gradio's cache are bounded by ``UploadCache``: each client's share
  (``MAX_UPLOAD_CACHE_PER_CLIENT``) and the total (``MAX_UPLOAD_CACHE``), reserved from the
  request's Content-Length before a byte is written, so parallel uploads cannot pass the cap; the
  room comes from the same client's oldest files, then from files older than ``UPLOAD_GRACE``
  seconds (which a handler has long read), else the upload is refused as busy;
- sketchpad strokes are bounded by ``BlobStore``: one image of at most ``MAX_BLOB_BYTES`` per
  request, a layer index below ``MAX_LAYERS``, and each client's share and the total of what
  Gradio holds in memory.

Refusals are short HTTP 4xx/503 answers, ``{"detail": message, "error": message}``, that name the
field and never repeat the value; nothing of a value reaches the log. On the direct routes
(``/run/``), Gradio answers a handler's message (``gr.Error``) with HTTP 500: the guard turns that
into 400, so a 500 always means a fault of the server. ``cache_sweep`` says how often Gradio's
cache is swept by age.

The guard is a package: ``base`` (the bounds, ``Settings``, ``Refused``, ``client_key``), ``checks``
(JSON, routes, jobs), ``values`` (each value against its component, ``FileBudget``), ``slots`` (fair
slots for the listeners answered outside the queue), ``fairness`` (pending counts and the queue
picker), ``upload_cache`` (``UploadCache``), ``blobs`` (``BlobStore``) and ``request_guard``
(``RequestGuard``). Everything is imported from here (``from rnnviz.app.guard import ...``); a bound
is read where it is used, so a test that changes one patches that module (e.g.
``guard.upload_cache.MAX_UPLOAD_CACHE``).
"""

from __future__ import annotations

from . import base, blobs, checks, fairness, request_guard, slots, upload_cache, values
from .base import (API, BLOB_FIELDS, BLOB_GRACE, BUSY_DELAY, CACHE_SWEEP, CALL_KEYS, DRAWING_KEYS, FILE_KEYS, FILE_META,
                   JOB_KEYS, MAX_BLOB_BYTES, MAX_BLOB_MEMORY, MAX_BLOBS, MAX_BLOBS_PER_CLIENT, MAX_BODY, MAX_CHOICE,
                   MAX_DEPTH, MAX_DIGITS, MAX_FILES, MAX_ID, MAX_LAYERS, MAX_PENDING, MAX_PENDING_PER_ENDPOINT,
                   MAX_QUEUE, MAX_REQUEST_BYTES, MAX_REQUEST_PIXELS, MAX_TEXT, MAX_UPLOAD_CACHE,
                   MAX_UPLOAD_CACHE_PER_CLIENT, MAX_UPLOAD_FILES_PER_CLIENT, MAX_UPLOADS_IN_FLIGHT, SETTINGS,
                   UPLOAD_GRACE, URL_PREFIXES, Refused, Settings, busy, cache_sweep, client_key, configure,
                   request_client)
from .blobs import BlobStore, read_blob_form
from .checks import Job, Route, check_job, check_request, json_depth, parse_job, parse_json, route_of
from .fairness import (BACKLOG, NEW_SESSION_BURST, NEW_SESSION_RATE, QUIET, RECENT, Pending, check_fairness,
                       fair_get_events, install_fair_queue, pending_jobs, take_new_session)
from .request_guard import RequestGuard, middleware
from .upload_cache import UploadCache, trim_uploads
from .values import SCALAR, FileBudget, image_pixels, upload_folder

__all__ = ["API", "BACKLOG", "base", "BLOB_FIELDS", "BLOB_GRACE", "blobs", "BlobStore", "busy", "BUSY_DELAY",
           "CACHE_SWEEP", "cache_sweep", "CALL_KEYS", "check_fairness", "check_job", "check_request", "checks",
           "client_key", "configure", "DRAWING_KEYS", "fair_get_events", "fairness", "FILE_KEYS", "FILE_META",
           "FileBudget", "image_pixels", "install_fair_queue", "Job", "JOB_KEYS", "json_depth", "MAX_BLOB_BYTES",
           "MAX_BLOB_MEMORY", "MAX_BLOBS", "MAX_BLOBS_PER_CLIENT", "MAX_BODY", "MAX_CHOICE", "MAX_DEPTH",
           "MAX_DIGITS", "MAX_FILES", "MAX_ID", "MAX_LAYERS", "MAX_PENDING", "MAX_PENDING_PER_ENDPOINT", "MAX_QUEUE",
           "MAX_REQUEST_BYTES", "MAX_REQUEST_PIXELS", "MAX_TEXT", "MAX_UPLOAD_CACHE", "MAX_UPLOAD_CACHE_PER_CLIENT",
           "MAX_UPLOAD_FILES_PER_CLIENT", "MAX_UPLOADS_IN_FLIGHT", "middleware", "NEW_SESSION_BURST",
           "NEW_SESSION_RATE", "parse_job", "parse_json", "Pending", "pending_jobs", "QUIET", "read_blob_form",
           "RECENT", "Refused", "request_client", "request_guard", "RequestGuard", "Route", "route_of", "SCALAR",
           "SETTINGS", "Settings", "slots", "take_new_session", "trim_uploads", "upload_cache", "upload_folder",
           "UPLOAD_GRACE", "UploadCache", "URL_PREFIXES", "values"]
