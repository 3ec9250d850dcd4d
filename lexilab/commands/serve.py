"""`python -m lexilab serve RUN_DIR [RUN_DIR ...]`: trained runs as a REST API and a web page."""
from __future__ import annotations

import socket
import sys

from lexilab.errors import LexilabError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve trained runs: REST API (/predict, /runs, /health, /docs) and a web page",
        description="Several finished run directories (two arms of a study, or one arm across seeds) side by "
                    "side under their arm/seed names. The page at / compares their outputs on your text.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port, printed at start)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--max-batch", type=int, default=64, help="most texts in one encoder pass")
    parser.add_argument("--max-chars", type=int, default=20000, help="longest text a request may send")
    parser.set_defaults(func=handle)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts so a busy port is one clear line."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        raise LexilabError(f"--host {host} --port {port}: cannot listen ({err.strerror or err})") from None
    return sock


def handle(args) -> int:
    import uvicorn

    from lexilab.serve import check_run_dirs, create_app
    from lexilab.train.assembly import resolve_device

    for flag, value in (("--max-batch", args.max_batch), ("--max-chars", args.max_chars)):
        if value < 1:
            raise LexilabError(f"{flag}: must be at least 1, got {value}")
    if not 0 <= args.port <= 65535:
        raise LexilabError(f"--port: {args.port} is not a TCP port (0-65535)")
    try:
        resolve_device(args.device)
    except LexilabError as err:
        raise LexilabError(f"--device: {str(err).split(': ', 1)[-1]}") from None
    runs = check_run_dirs(args.run_dirs)  # every directory checked before anything listens
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"lexilab serve: http://{shown}:{port}/ — {', '.join(r.name for r in runs)} "
          f"(weights loading; GET /health says ready)", flush=True)
    app = create_app(runs, args.device, args.max_batch, args.max_chars,
                     announce=lambda line: print(line, file=sys.stderr, flush=True))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
