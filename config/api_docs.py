"""The API's documentation pages: Swagger UI (``/api/docs/``) and ReDoc (``/api/redoc/``),
from drf-spectacular-sidecar's copies (no CDN), under the site's CSP.

Our templates replace drf-spectacular's, whose inline ``<style>`` (and, for ReDoc, Google
Fonts link and inline ``<script>``) the policy refuses. Swagger UI's start-up script is
served as a file of its own (``SpectacularSwaggerSplitView``), and needs nothing more.
ReDoc needs two exceptions, on its page only (``redoc_view``): its styles are
``<style>`` elements it writes at run time, allowed by this response's CSP nonce
(which ReDoc puts on each of them), and its search runs in a Web Worker made from a
``blob:`` URL. Neither lets a script in that the site policy would refuse.
"""

from __future__ import annotations

from csp.constants import NONCE
from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    url_name = "api-schema"
    template_name = "api/swagger_ui.html"


class RedocView(SpectacularRedocView):
    url_name = "api-schema"
    template_name = "api/redoc.html"


swagger_view = SwaggerView.as_view()
redoc_view = csp_update({"style-src": [NONCE], "worker-src": ["blob:"]})(RedocView.as_view())
