"""pysendmail.cli"""
