"""pysendmail.delivery"""
