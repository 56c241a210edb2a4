"""Distribution on Celery: shards in, results out, through scan.py.

    app      the Celery app (one queue per vantage), the shard task (expiring, revocable)
    stream   the batch stream: a per-scan kombu queue, the same on Redis and RabbitMQ
    runner   the coordinator's side: send the shards, merge their batches, time out silence

Celery and kombu are imported only here, and only with `scan --broker` or `ghostport worker`.
"""
