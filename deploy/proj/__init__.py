"""Sample project run by the files in deploy/: replace it with your own.

The deploy files name two import paths, ``proj.app`` (the Celery app, for workers)
and ``proj.web:app`` (the Flask app, for gunicorn); keep them or change them there.
"""
