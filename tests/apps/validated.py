"""The fault app wrapped in wsgiref.validate: any WSGI violation by the server raises."""
import os
import sys
from wsgiref.validate import validator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault  # noqa: E402

application = validator(fault.application)
