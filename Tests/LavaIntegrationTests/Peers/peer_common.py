"""What every loopback test peer shares: dying with its parent, and announcing its port."""
import os
import signal
import sys
import threading


def watch_stdin():
    """Exit when stdin reaches EOF: the test process died or closed it."""
    def run():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(0)
    threading.Thread(target=run, daemon=True, name="stdin-watch").start()


def serve(server, watch):
    """SIGTERM ends the peer; prints `PORT <n>` (the harness waits for it), then serves."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if watch:
        watch_stdin()
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    os.dup2(2, 1)
    server.serve_forever()
