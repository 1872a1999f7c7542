"""Imported at start-up by every ``litellm`` server the tests run: their PYTHONPATH names this
folder.

LiteLLM 1.110's gunicorn master starts a thread that reads /proc through the ascii codec just
before it forks its workers. A worker forked while that thread is importing ``encodings.ascii``
inherits the module's import lock, held by a thread the worker does not have, and hangs for good
the first time it opens a file as ascii (APScheduler's time-zone lookup does, at start-up).
Importing the codec here, before any thread exists, leaves that thread nothing to import.
"""

import encodings.ascii  # noqa: F401
