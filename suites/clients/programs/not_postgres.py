"""not_postgres.py — loopback traffic that is no PostgreSQL session: `http` (http.server + urllib), `raw` (8 bytes that are no request code), `udp` (SSLRequest bytes in datagrams); none may count as a connection."""
import http.server
import socket
import sys
import threading
import urllib.request

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # length 8, code 80877103
NOT_A_REQUEST = b"\x00\x00\x00\x08\x12\x34\x56\x78"  # the same shape with a code PostgreSQL does not have


def http_round_trips():
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for _ in range(3):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=10) as r:
            assert r.read() == b"hello\n"
    server.shutdown()
    server.server_close()


def raw_bytes():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=10)
    peer, _ = listener.accept()
    client.sendall(NOT_A_REQUEST)
    got = b""
    while len(got) < 8:
        got += peer.recv(8 - len(got))
    assert got == NOT_A_REQUEST
    for s in (client, peer, listener):
        s.close()


def udp_datagrams():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(SSL_REQUEST, receiver.getsockname())  # unconnected
    sender.connect(receiver.getsockname())  # connected: connect + send, as a TCP client would
    sender.send(SSL_REQUEST)
    for _ in range(2):
        assert receiver.recv(64) == SSL_REQUEST
    sender.close()
    receiver.close()


{"http": http_round_trips, "raw": raw_bytes, "udp": udp_datagrams}[sys.argv[1]]()
print("done", flush=True)
