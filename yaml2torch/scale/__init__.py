"""Scale-out and faults: storages, study metadata, worker processes, trial isolation.

The search (``yaml2torch.search``) runs trials; this package makes many processes on many
machines share one study safely: which storage a URL means, what a study records so a
worker needs only ``--storage`` and ``--study``, how stale and faulty trials are detected,
failed and retried, and how a trial runs in a child process under a time limit.
"""
