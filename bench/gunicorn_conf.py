"""gunicorn settings of the benchmark's server, independent of any project gunicorn.conf.py."""

workers = 2
worker_class = "sync"
# Workers live for the whole run: the memory check needs the same processes.
max_requests = 0
timeout = 60
accesslog = None
loglevel = "warning"
