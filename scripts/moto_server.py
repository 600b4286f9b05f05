"""moto's server, answering one request at a time.

DynamoDB applies each conditional write atomically. moto does not: its backend reads the
item, evaluates the condition and writes without a lock, so under moto's threaded server
two concurrent claims of the same item can both succeed (seen about once in 20,000 claims
when four scheduler runs overlap). Serialising requests gives the stand-in DynamoDB's
guarantee; moto already runs one request at a time under Python's GIL, so it costs little.

Same arguments as `moto_server`.
"""

import threading

import moto.server


def serialised(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    return handle


_run_simple = moto.server.run_simple


def _run_serialised(host, port, app, **kwargs):
    _run_simple(host, port, serialised(app), **kwargs)


moto.server.run_simple = _run_serialised

if __name__ == "__main__":
    moto.server.main()
