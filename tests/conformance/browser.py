#!/usr/bin/env python3
"""Stands in for the person at the browser during `login --no-browser`.

Runs the command given after `--` with the MCP URL the conformance suite
appends, reads its stderr, and follows every authorization URL it prints
alone on a line: the authorization server answers with a redirect, whose
`Location` (the login's own loopback callback) is then requested, as a
browser would. Exits with the command's exit status.
"""
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def follow(url: str) -> None:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url, timeout=10)
        return
    except urllib.error.HTTPError as e:
        location = e.headers.get("Location")
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        print(f"browser: {url} failed: {e}", file=sys.stderr)
        return
    if not location:
        return
    try:
        urllib.request.urlopen(location, timeout=10).read()
    except Exception as e:  # noqa: BLE001
        print(f"browser: callback {location} answered {e}", file=sys.stderr)


def main() -> int:
    args = sys.argv[1:]
    if "--" in args:
        args = args[args.index("--") + 1 :]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        text = line.strip()
        if text.startswith(("http://", "https://")) and " " not in text:
            threading.Thread(target=follow, args=(text,), daemon=True).start()
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
