"""`kizashi bench ingest|scoring|e2e|console|scale [--json]`: each throughput figure comes with a
baseline measured in the same run on the same machine, and the ratio between them; the
console's with its pages' server-side times against the 300 ms goal; `scale` with what the
sweeps, the accounts API, the console and the database cost per account as the accounts grow."""

import argparse
import importlib

from kizashi.tools.settings import ToolSettings

BENCHMARKS = {
    "ingest": "kizashi.tools.bench.ingest",
    "scoring": "kizashi.tools.bench.scoring",
    "e2e": "kizashi.tools.bench.e2e",
    "console": "kizashi.tools.bench.console",
    "scale": "kizashi.tools.bench.scale",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, module_name in BENCHMARKS.items():
        sub = which.add_parser(name)
        sub.add_argument("--json", action="store_true", help="end with one JSON line")
        importlib.import_module(module_name).add_arguments(sub)


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    return importlib.import_module(BENCHMARKS[args.benchmark]).run(args, settings)
