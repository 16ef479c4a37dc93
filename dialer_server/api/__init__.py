"""The HTTP control API, /api/v1, and its OpenAPI document at /openapi.json.

Each module holds the handlers of one resource and their ``OPERATIONS``; its
request and response shapes are in ``schemas/`` under the same name. ``app.py``
registers the routes from those tables and builds the document from them, so the
two cannot disagree, and serves the probes and /metrics beside them.
"""
