#!/usr/bin/env python3
"""A real SMTP server for the notification tests (tests/it/notify.rs).

Listens on HOST:PORT with aiosmtpd and writes every message it accepts to
DIR/NNNN.eml (written to a temporary name, then renamed, so a reader never
sees half a message). The file starts with two extra header lines,
X-Envelope-From and X-Envelope-To (the SMTP envelope), then the message as
received. Beside it, DIR/NNNN.json holds the message parsed by Python's
email package (RFC 2047 subjects and transfer encodings decoded):
{"envelope_from", "envelope_to", "from", "to", "subject", "body"}. With --auth USER:PASSWORD the server offers AUTH PLAIN/LOGIN over
the plain connection and accepts only those credentials; DIR/auth.log gets
one line per attempt ("ok USER" or "rejected USER").

Prints "ready HOST:PORT" on stdout once it listens; runs until SIGTERM or
SIGINT.

    python3 scripts/smtp_sink.py --port 2525 --dir /tmp/mails [--auth u:p]

Needs the aiosmtpd package (scripts/test.sh installs it).
"""

import argparse
import email
import email.policy
import json
import logging
import os
import signal
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        tmp = os.path.join(self.dir, f".{n:04d}.tmp")
        final = os.path.join(self.dir, f"{n:04d}.eml")
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        msg = email.message_from_bytes(content, policy=email.policy.default)
        parsed = {
            "envelope_from": envelope.mail_from,
            "envelope_to": list(envelope.rcpt_tos),
            "from": str(msg.get("from", "")),
            "to": str(msg.get("to", "")),
            "subject": str(msg.get("subject", "")),
            "body": msg.get_content() if not msg.is_multipart() else "",
        }
        with open(tmp, "w") as f:
            json.dump(parsed, f)
        os.rename(tmp, os.path.join(self.dir, f"{n:04d}.json"))
        with open(tmp, "wb") as f:
            f.write(f"X-Envelope-From: {envelope.mail_from}\r\n".encode())
            f.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(content)
        os.rename(tmp, final)
        return "250 OK message accepted"


class Authenticator:
    def __init__(self, directory, user, password):
        self.log = os.path.join(directory, "auth.log")
        self.user = user
        self.password = password

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = False
        user = ""
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            ok = user == self.user and auth_data.password.decode("utf-8", "replace") == self.password
        with open(self.log, "a") as f:
            f.write(f"{'ok' if ok else 'rejected'} {user}\n")
        return AuthResult(success=ok)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--auth", help="USER:PASSWORD required for AUTH")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    # AUTH without TLS is what the test wants: no warning about it.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    kwargs = {}
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs = {
            "authenticator": Authenticator(args.dir, user, password),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(Sink(args.dir), hostname=args.host, port=args.port, **kwargs)
    controller.start()
    print(f"ready {args.host}:{args.port}", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
