"""A shared-study worker library: many processes on many machines running one Optuna study safely.

Generic: it knows nothing of model specs or of the search (``yaml2torch.search`` drives it).

- ``storage``: which Optuna storage a URL means; retries while the database is away; artifacts.
- ``budget``: an exact study-wide trial budget across workers (a lock per study).
- ``worker``: the loop (start a trial, run it, record its outcome, survive faults).
- ``stale``: who runs a trial, and failing and retrying trials whose worker died.
- ``isolation``: a trial in a forked child process, under a time limit.
- ``faults``: injected faults for tests; one-line failure reasons.
- ``signals``: SIGINT/SIGTERM as an exception in the main thread.
- ``launch``: worker processes on this machine.
- ``_optuna``: the only module that uses Optuna's private API.
"""
