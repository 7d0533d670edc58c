"""pysendmail.config"""
