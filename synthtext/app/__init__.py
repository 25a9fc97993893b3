"""The web page and HTTP API of ``synthtext serve``.

``server`` (the FastAPI routes), ``service`` (the job queue and its workers), ``retention`` (deleting
jobs and photos), ``store`` (uploads on disk), ``access`` (keys, limits and serve options), ``schema``
(the OpenAPI description), ``uploads`` (reading uploaded files), ``model`` (which generator the server
runs), ``web/`` (the page).
"""
