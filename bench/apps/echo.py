"""Bench app: echoes the request body (the bench POSTs 4 KiB)."""


def application(environ, start_response):
    n = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(n)) if n.isdigit() else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
