"""A small Flask app exercising what real apps do: forms, uploads, streaming, errors."""
import hashlib

from flask import Flask, Response, request

app = Flask(__name__)
application = app


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/form", methods=["POST"])
def form():
    items = sorted((k, v) for k in request.form for v in request.form.getlist(k))
    return "form:" + "&".join("%s=%s" % kv for kv in items)


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return "upload:%s:%d:%s:%s" % (f.filename, len(data), hashlib.sha256(data).hexdigest(),
                                    request.form.get("note", ""))


@app.route("/stream")
def stream():
    n = int(request.args.get("n", "5"))

    def gen():
        for i in range(n):
            yield "line %d of %d\n" % (i, n)
    return Response(gen(), mimetype="text/plain")


@app.route("/json", methods=["POST"])
def json_echo():
    return {"got": request.get_json(), "args": request.args.to_dict()}


@app.route("/boom")
def boom():
    raise ValueError("flask app: deliberate failure for the 500 test")
