"""A real SMTP server for the email sink's tests (Debian's python3-aiosmtpd).

Every accepted message is parsed by Python's MIME parser and written to SPOOL/N.json with the
envelope, the decoded headers and the decoded body. Scripted failures by recipient:
reject@… → 550 at RCPT, tempfail@… → 451 after DATA. With --auth USER:PASS, other credentials
get 535. With --starttls, a self-signed certificate is made and STARTTLS is required.
"""
import argparse, json, os, ssl, subprocess, sys, time
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, spool):
        self.spool = spool
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject@"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("tempfail@") for r in envelope.rcpt_tos):
            return "451 4.3.0 try again later"
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in message.items()],
            "subject": str(message["subject"]),
            "body": message.get_content().replace("\r\n", "\n"),
            "raw": raw.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        path = os.path.join(self.spool, "%04d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 queued as %04d" % self.count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--auth")
    parser.add_argument("--starttls", action="store_true")
    args = parser.parse_args()

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            try:
                login, secret = auth_data.login, auth_data.password
                login = login.decode() if isinstance(login, bytes) else login
                secret = secret.decode() if isinstance(secret, bytes) else secret
                ok = login == user and secret == password
            except Exception as error:  # a broken authenticator must refuse, not hang the session
                print("authenticator error:", error, file=sys.stderr, flush=True)
                ok = False
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_require_tls=args.starttls, auth_required=True)
    if args.starttls:
        cert, key = os.path.join(args.spool, "cert.pem"), os.path.join(args.spool, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs.update(tls_context=context, require_starttls=True)

    controller = Controller(Handler(args.spool), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
