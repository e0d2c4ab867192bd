"""A send is cut off as a whole at EMAIL_TIMEOUT, even by a server that trickles its answers (each
byte well inside the socket timeout, so no single read ever times out)."""
import socket
import threading
import time

import pytest
from django.core.mail import EmailMessage

from emails.backends import SMTPBackend
from emails.sending import NotSent, classify

TIMEOUT = 1.0
ANSWERS = {b"EHLO": b"250 trickle.test\r\n", b"MAIL": b"250 OK\r\n", b"RCPT": b"250 OK\r\n",
           b"DATA": b"354 go ahead\r\n", b".": b"250 2.0.0 accepted\r\n", b"QUIT": b"221 bye\r\n"}


class TricklingSmtp:
    """A real SMTP server on loopback that answers `slow` (b"220" the greeting, b"." the end of the
    message) one byte every TIMEOUT / 4, and the rest at once."""

    def __init__(self, slow: bytes) -> None:
        self.slow = slow
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _say(self, conn: socket.socket, command: bytes, answer: bytes) -> None:
        if command != self.slow:
            conn.sendall(answer)
            return
        for byte in answer:  # each byte well inside the socket timeout, the whole line long after it
            conn.sendall(bytes([byte]))
            time.sleep(TIMEOUT / 4)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            self._say(conn, b"220", b"220 trickle.test ESMTP\r\n")
            lines = conn.makefile("rb")
            in_data = False
            for line in lines:
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        self._say(conn, b".", ANSWERS[b"."])
                    continue
                command = line.split()[0].upper() if line.strip() else b""
                in_data = command == b"DATA"
                self._say(conn, command, ANSWERS.get(command, b"250 OK\r\n"))
        except OSError:
            pass  # the client cut the session off
        finally:
            conn.close()


@pytest.mark.parametrize("slow, sent_maybe", [(b"220", False), (b".", True)], ids=["greeting", "after-data"])
def test_a_trickling_server_is_cut_off_at_email_timeout(slow, sent_maybe):
    server = TricklingSmtp(slow)
    backend = SMTPBackend(host="127.0.0.1", port=server.port, timeout=TIMEOUT, use_tls=False, use_ssl=False)
    message = EmailMessage("hi", "body", "a@agency.test", ["b@acme.io"], connection=backend)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        message.send()
    took = time.monotonic() - started
    assert took < TIMEOUT + 0.5, f"the send took {took:.2f}s"
    # Before DATA the message certainly did not go out (retried); after it, it may have (unknown).
    outcome = classify(raised.value, data_started=backend.data_started)
    assert backend.data_started is sent_maybe
    assert isinstance(outcome, NotSent) is (not sent_maybe)
