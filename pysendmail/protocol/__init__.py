"""pysendmail.protocol"""
