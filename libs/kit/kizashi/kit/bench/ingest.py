"""`kizashi bench ingest`: not written yet."""

import argparse

from kizashi.kit.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise SystemExit("kizashi bench ingest is not available yet")
