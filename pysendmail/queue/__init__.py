"""pysendmail.queue"""
