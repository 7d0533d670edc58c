"""pysendmail.queue: the sendmail 8 queue directory.

`qf` owns the qf/df format, `store` durable enqueue and locks (`QueueStore`),
`listing` the mailq/-bp output, `runner` queue runs.
"""
