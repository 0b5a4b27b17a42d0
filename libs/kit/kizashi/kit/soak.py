"""`kizashi soak`: not written yet."""

import argparse

from kizashi.kit.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise SystemExit("kizashi soak is not available yet")
