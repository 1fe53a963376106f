"""Builds a small Django project with `django-admin startproject` plus an app with the
same routes as the Flask app (used by test_flask_django.py)."""
import subprocess
from pathlib import Path

VIEWS = '''
import hashlib
from django.http import HttpResponse, StreamingHttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Hello from Django", content_type="text/plain")


@csrf_exempt
def form(request):
    items = sorted((k, v) for k in request.POST for v in request.POST.getlist(k))
    return HttpResponse("form:" + "&".join("%s=%s" % kv for kv in items), content_type="text/plain")


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return HttpResponse("upload:%s:%d:%s:%s" % (f.name, len(data), hashlib.sha256(data).hexdigest(),
                                                request.POST.get("note", "")),
                        content_type="text/plain")


def stream(request):
    n = int(request.GET.get("n", "5"))
    return StreamingHttpResponse(("line %d of %d\\n" % (i, n) for i in range(n)),
                                 content_type="text/plain")


@csrf_exempt
def json_echo(request):
    import json
    return JsonResponse({"got": json.loads(request.body), "args": request.GET.dict()})


def boom(request):
    raise ValueError("django app: deliberate failure for the 500 test")
'''

URLS = '''
from django.urls import path
from site_app import views

urlpatterns = [
    path("", views.index),
    path("form", views.form),
    path("upload", views.upload),
    path("stream", views.stream),
    path("json", views.json_echo),
    path("boom", views.boom),
]
'''

SETTINGS_TAIL = '''

# --- added by ruwsgi's tests
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "site_app"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "site_app.urls"
APPEND_SLASH = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
'''


def make_project(django_admin, dest):
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([django_admin, "startproject", "proj", str(dest)], check=True, timeout=60)
    app = dest / "site_app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "views.py").write_text(VIEWS)
    (app / "urls.py").write_text(URLS)
    settings = dest / "proj" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS_TAIL)
    return dest
