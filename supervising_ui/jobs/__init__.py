"""Background jobs: the queue (queue.py: submit, the worker, stale jobs), what a running job
reports (runtime.py: progress, heartbeats, shutdown), the worker's once-a-minute checks
(minutely.py) and the one status endpoint (views.py). It knows no job kinds: create_app
registers each kind's handler, as it registers the minutely checks."""
