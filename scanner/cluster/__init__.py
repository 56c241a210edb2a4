"""Distribution on Celery: shards in, results out, through scan.py.

    app      the Celery app (one queue per vantage), the shard task, the batch channel
    runner   the coordinator's side: send the shards, merge their batches, time out silence

Celery is imported only here, and only with `scan --broker` or `ghostport worker`.
"""
