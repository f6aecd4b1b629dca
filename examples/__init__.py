"""Runnable examples for celery_durable: the seed recipes, ported to Python.

* :mod:`examples.pipeline`       sequential ``await``: validate → process → store
* :mod:`examples.parallel_fetch` ``asyncio.gather``: three independent fetches at once
* :mod:`examples.race_deadline`  ``race(webhook, sleep(deadline))``: a callback or a deadline
* :mod:`examples.birthday`       all of it together: steps, fan-out, webhooks, a sleep

``python -m examples.demo`` (``make demo``) runs them all end to end.
"""
