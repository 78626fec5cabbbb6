#!/usr/bin/env python3
"""Loopback port helper for the pipeline scripts and their tests.

  ports.py free N        print N distinct free UDP ports, each even with the
                         next (odd) one free too (RTP + RTCP), one per line
  ports.py wait PORT [S] wait up to S seconds (default 30) until something
                         has bound UDP PORT on 127.0.0.1 (a receiver is up)

Free ports are found by binding port 0 and asking the kernel; scripts that run
in parallel get different ports. A port can still be taken between this check
and its use; the window is short.
"""
import socket
import sys
import time


def bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free(n):
    held, out = [], []
    while len(out) < n:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        held.append(s)
        port = s.getsockname()[1]
        if port % 2 or port + 1 > 65535 or port + 1 in out:
            continue
        if not bindable(port + 1):
            continue
        out.append(port)
    for s in held:
        s.close()
    return out


def wait(port, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not bindable(port):
            return True
        time.sleep(0.1)
    return False


def main(argv):
    if len(argv) >= 3 and argv[1] == "free":
        print("\n".join(str(p) for p in free(int(argv[2]))))
        return 0
    if len(argv) >= 3 and argv[1] == "wait":
        seconds = float(argv[3]) if len(argv) > 3 else 30.0
        if wait(int(argv[2]), seconds):
            return 0
        print(f"ports.py: nothing bound UDP port {argv[2]} within {seconds:g} s",
              file=sys.stderr)
        return 1
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
