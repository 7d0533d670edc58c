"""pysendmail.daemons"""
