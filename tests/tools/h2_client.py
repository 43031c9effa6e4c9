#!/usr/bin/env python3
"""A raw HTTP/2 (h2c, prior knowledge) client for the integration tests.

Usage: h2_client.py PORT [--concurrency N] [--timeout SECONDS] < requests.json > results.json

Reads a JSON list of requests on stdin and sends them to 127.0.0.1:PORT over one cleartext
HTTP/2 connection (several streams: up to N at once, default 1). Headers go out exactly as
given: no validation, no normalisation, so odd bytes reach Envoy's codec.

Bytes are carried in JSON strings as latin-1: each character U+0000..U+00FF stands for the byte
of the same value (so "\\u00ff" is the byte 0xff). This applies to every method, path,
authority, header name and value, body and trailer, in requests and in results.

A request:
  {"method": "POST", "path": "/bff/backchannel", "authority": "127.0.0.1",
   "scheme": "http",                          (optional, default "http")
   "headers": [["content-type", "..."], ...], (optional, regular headers, in order)
   "body": "...",                             (optional)
   "trailers": [["x-trailer", "1"]]}          (optional: a trailers HEADERS frame ends the stream)

A result, one per request, in order:
  {"outcome": "response" | "reset" | "error" | "timeout",
   "status": 200 | null, "headers": [[name, value], ...], "body": "...",
   "error": "why, for reset/error/timeout", "connection": index of the connection used,
   "elapsed_ms": time from sending the headers to the outcome}

When Envoy ends the connection (GOAWAY, close, protocol error), the streams in flight get
"error" (or "reset") and the remaining requests go out on a new connection. Every read has a
timeout: a stream that does not finish within --timeout seconds gets "timeout" and its
connection is dropped. The process never waits longer than about
(number of requests / concurrency + 1) * timeout.
"""

import argparse
import json
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.errors


def lat(s):
    return s.encode("latin-1")


def unlat(b):
    if isinstance(b, str):
        return b
    return bytes(b).decode("latin-1")


class Stream:
    def __init__(self, index, req):
        self.index = index
        self.req = req
        self.pending = lat(req.get("body", "") or "")
        self.trailers = req.get("trailers")
        self.sent_end = False
        self.result = {"outcome": None, "status": None, "headers": [], "body": "", "error": ""}
        self.body = bytearray()
        self.done = False

    def finish(self, outcome, error=""):
        if self.done:
            return
        self.done = True
        self.result["elapsed_ms"] = int((time.monotonic() - getattr(self, "started", time.monotonic())) * 1000)
        self.result["outcome"] = outcome
        self.result["error"] = error
        self.result["body"] = unlat(self.body)


class Client:
    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.connections = 0
        self.sock = None
        self.conn = None

    def connect(self):
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock.setblocking(False)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.connections += 1
        self.flush()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.conn = None

    def flush(self):
        data = self.conn.data_to_send()
        while data:
            _, writable, _ = select.select([], [self.sock], [], self.timeout)
            if not writable:
                raise TimeoutError("write timed out")
            n = self.sock.send(data)
            data = data[n:]

    def start(self, stream):
        req = stream.req
        headers = [
            (b":method", lat(req.get("method", "GET"))),
            (b":scheme", lat(req.get("scheme", "http"))),
            (b":authority", lat(req.get("authority", "127.0.0.1"))),
            (b":path", lat(req.get("path", "/"))),
        ]
        headers += [(lat(n), lat(v)) for n, v in req.get("headers", [])]
        sid = self.conn.get_next_available_stream_id()
        stream.sid = sid
        stream.result["connection"] = self.connections - 1
        stream.started = time.monotonic()
        only_headers = not stream.pending and not stream.trailers
        self.conn.send_headers(sid, headers, end_stream=only_headers)
        stream.sent_end = only_headers

    def pump(self, stream):
        """Sends as much of the stream's body (then trailers or END_STREAM) as flow control allows."""
        if stream.done or stream.sent_end:
            return
        conn = self.conn
        while stream.pending:
            window = min(
                conn.local_flow_control_window(stream.sid), conn.max_outbound_frame_size
            )
            if window <= 0:
                return
            chunk, stream.pending = stream.pending[:window], stream.pending[window:]
            last = not stream.pending and not stream.trailers
            conn.send_data(stream.sid, chunk, end_stream=last)
            if last:
                stream.sent_end = True
                return
        if stream.trailers:
            conn.send_headers(
                stream.sid, [(lat(n), lat(v)) for n, v in stream.trailers], end_stream=True
            )
        else:
            conn.end_stream(stream.sid)
        stream.sent_end = True

    def run_window(self, streams):
        """Runs the streams to completion on the current connection. Returns False when the
        connection is unusable afterwards."""
        by_sid = {}
        for s in streams:
            self.start(s)
            by_sid[s.sid] = s
        for s in streams:
            self.pump(s)
        self.flush()
        deadline = time.monotonic() + self.timeout
        while not all(s.done for s in streams):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for s in streams:
                    s.finish("timeout", "no complete answer within %.1f s" % self.timeout)
                return False
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if not readable:
                continue
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError, OSError) as e:
                for s in streams:
                    s.finish("error", "connection: %r" % e)
                return False
            if not data:
                for s in streams:
                    s.finish("error", "connection closed by Envoy")
                return False
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                for s in streams:
                    s.finish("error", "protocol error: %r" % e)
                return False
            alive = True
            for ev in events:
                s = by_sid.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived) and s:
                    for n, v in ev.headers:
                        n, v = unlat(n), unlat(v)
                        if n == ":status":
                            s.result["status"] = int(v)
                        else:
                            s.result["headers"].append([n, v])
                elif isinstance(ev, h2.events.InformationalResponseReceived):
                    pass
                elif isinstance(ev, h2.events.DataReceived):
                    if s:
                        s.body.extend(ev.data)
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and s:
                    s.finish("response")
                elif isinstance(ev, h2.events.StreamReset) and s:
                    # A reset after a complete answer (Envoy cancelling the upload) is harmless.
                    s.finish("reset", "RST_STREAM %r" % ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    for t in streams:
                        t.finish("error", "GOAWAY %r" % ev.error_code)
                    alive = False
            for s in streams:
                if s.done and not s.sent_end:
                    # Answered before the upload ended: stop sending it.
                    s.sent_end = True
                    try:
                        self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CANCEL)
                    except h2.exceptions.H2Error:
                        pass
                else:
                    try:
                        self.pump(s)
                    except h2.exceptions.H2Error as e:
                        s.finish("error", "send: %r" % e)
            try:
                self.flush()
            except (OSError, TimeoutError) as e:
                for s in streams:
                    s.finish("error", "write: %r" % e)
                return False
            if not alive:
                return False
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    requests = json.load(sys.stdin)
    streams = [Stream(i, r) for i, r in enumerate(requests)]
    client = Client(args.port, args.timeout)
    usable = False
    i = 0
    while i < len(streams):
        window = streams[i : i + max(1, args.concurrency)]
        i += len(window)
        try:
            if not usable:
                client.connect()
            usable = client.run_window(window)
        except Exception as e:  # noqa: BLE001 - any failure is one result, never a hang
            for s in window:
                s.finish("error", "client: %r" % e)
            usable = False
        if usable and client.conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
            usable = False
    client.close()
    json.dump([s.result for s in streams], sys.stdout)


if __name__ == "__main__":
    main()
