"""pysendmail.rules"""
