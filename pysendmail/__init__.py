"""pysendmail: a sendmail 8 compatible MTA, with the POP3 server of a small mail host."""

__version__ = "0.1.0"
# What sendmail calls $v (the version) and what the banner and -d0.1 print.
SENDMAIL_VERSION = "8.17.1.9"
