"""lmtp_protocol.py without sockets: the dialogue's bytes, one final reply per accepted
recipient after the dot, and what is left undecided when the server stops early."""

from pysendmail.delivery.lmtp_protocol import LmtpClient, ReplyReader


def _client(*rcpts: str) -> LmtpClient:
    return LmtpClient("mail.example.com", "alice@example.com", list(rcpts))


def test_reply_reader_joins_continuation_lines_and_waits_for_the_rest():
    reader = ReplyReader()
    assert reader.feed(b"250-one\r\n250-PIPE") == []
    assert reader.feed(b"LINING\r\n250 SIZE 100\r\n354 go") == [(250, "one\nPIPELINING\nSIZE 100")]
    assert reader.feed(b"\r\n") == [(354, "go")]


def test_a_whole_dialogue_gives_each_recipient_its_reply_after_the_dot():
    client = _client("ann", "bob", "cat")
    assert client.receive(b"220 lmtp ready\r\n") == b"LHLO mail.example.com\r\n"
    out = client.receive(b"250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")
    assert out == b"MAIL FROM:<alice@example.com>\r\n"
    assert client.extensions == {"PIPELINING", "ENHANCEDSTATUSCODES"}
    assert client.receive(b"250 ok\r\n") == b"RCPT TO:<ann>\r\n"
    assert client.receive(b"250 ok\r\n") == b"RCPT TO:<bob>\r\n"
    assert client.receive(b"550 5.1.1 no bob\r\n") == b"RCPT TO:<cat>\r\n"
    assert client.receive(b"250 ok\r\n") == b"DATA\r\n"
    assert client.receive(b"354 go\r\n") == b"" and client.wants_body
    client.body_sent()
    assert client.receive(b"250 2.0.0 ann ok\r\n") == b""
    assert client.receive(b"452 4.2.2 cat full\r\n") == b"QUIT\r\n"
    client.receive(b"221 bye\r\n")
    assert client.done and client.failure is None
    assert client.results == [(250, "2.0.0 ann ok"), (550, "5.1.1 no bob"), (452, "4.2.2 cat full")]


def test_refused_sender_is_every_recipients_reply():
    client = _client("ann", "bob")
    client.receive(b"220 hi\r\n")
    client.receive(b"250 lmtp\r\n")
    assert client.receive(b"553 5.1.8 bad sender\r\n") == b"QUIT\r\n"
    assert client.results == [(553, "5.1.8 bad sender")] * 2


def test_no_accepted_recipient_means_no_data():
    client = _client("ann")
    client.receive(b"220 hi\r\n250 lmtp\r\n250 ok\r\n")
    assert client.receive(b"550 5.1.1 no\r\n") == b"QUIT\r\n"
    assert client.results == [(550, "5.1.1 no")]


def test_connection_lost_after_some_final_replies_leaves_the_rest_undecided():
    client = _client("ann", "bob")
    client.receive(b"220 hi\r\n250 lmtp\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    client.body_sent()
    client.receive(b"250 2.0.0 ann ok\r\n")
    client.connection_lost("reset")
    assert client.done
    assert client.results == [(250, "2.0.0 ann ok"), None]
    assert client.failure == (421, "reset")


def test_refused_greeting_and_garbage_end_the_dialogue():
    client = _client("ann")
    assert client.receive(b"554 go away\r\n") == b"QUIT\r\n"
    assert client.failure == (554, "go away") and client.results == [None]
    garbage = _client("ann")
    assert garbage.receive(b"hello there\r\n") == b""
    assert garbage.done and garbage.failure == (0, "hello there")


def test_dsn_parameters_go_only_to_a_server_that_offers_dsn():
    def dialogue(lhlo_reply: bytes) -> bytes:
        client = LmtpClient(
            "mx", "a@b", ["ann"], dsn_mail_params=" RET=HDRS", dsn_rcpt_params=[" NOTIFY=NEVER"]
        )
        client.receive(b"220 hi\r\n")
        sent = client.receive(lhlo_reply)
        return sent + client.receive(b"250 ok\r\n")

    assert dialogue(b"250-lmtp\r\n250 DSN\r\n") == (
        b"MAIL FROM:<a@b> RET=HDRS\r\nRCPT TO:<ann> NOTIFY=NEVER\r\n"
    )
    assert dialogue(b"250 lmtp\r\n") == b"MAIL FROM:<a@b>\r\nRCPT TO:<ann>\r\n"
