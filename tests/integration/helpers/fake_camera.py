#!/usr/bin/python3
# fake_camera.py — a misbehaving HTTP camera on 127.0.0.1 for the fault-injection tests: "stall"
# sends the start of a real MPEG-TS file and then nothing, keeping the connection open; "garbage"
# sends an endless stream of random bytes as video/mp2t. Each connection is logged on stdout.
"""Usage: fake_camera.py stall|garbage PORT [TS_FILE]"""
import os
import socket
import sys
import threading
import time

HEADER = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n"
STALL_BYTES = 64 * 1024  # enough for the demuxer to find streams and decode a few frames


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk


def serve_stall(conn, ts):
    read_request(conn)
    conn.sendall(HEADER + ts[:STALL_BYTES])
    # Silence, with the socket open: the peer must notice by itself.
    while conn.recv(4096):
        pass


def serve_garbage(conn, _ts):
    read_request(conn)
    conn.sendall(HEADER)
    while True:
        conn.sendall(os.urandom(16384))
        time.sleep(0.01)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    ts = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else b""
    handler = {"stall": serve_stall, "garbage": serve_garbage}[mode]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    n = 0
    while True:
        conn, _ = srv.accept()
        n += 1
        print(f"connection {n}", flush=True)

        def run(c=conn):
            try:
                handler(c, ts)
            except OSError:
                pass
            finally:
                c.close()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
