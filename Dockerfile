# syntax=docker/dockerfile:1
# One image for the services; each service is a target that only sets its command:
#   docker build --target ingest -t kizashi-ingest .      (or: scoring, triggers, notifier, console)
#   docker build --target runtime -t kizashi .            (any command: kizashi serve <name>, migrate)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the dependencies, then the kizashi wheel -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/kizashi
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when it changes.
# The runtime dependencies only: the embedded servers and dev tools are the `embedded` extra.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && /opt/kizashi/bin/pip install --requirement /tmp/requirements.txt
# Then the code: one wheel holding every kizashi package (hatchling, see pyproject.toml).
# LICENSE goes into the wheel's metadata (license-files in pyproject.toml).
COPY LICENSE ./
COPY libs ./libs
COPY services ./services
RUN /opt/kizashi/bin/pip install --no-deps . \
    && /opt/kizashi/bin/python -m compileall -q /opt/kizashi/lib

# --- runtime: the virtualenv on a clean slim base, as an unprivileged user --------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/kizashi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KIZASHI_HOST=0.0.0.0 \
    KIZASHI_DATA_DIR=/tmp/kizashi
RUN groupadd --system --gid 10001 kizashi \
    && useradd --system --uid 10001 --gid kizashi --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kizashi
COPY --from=build /opt/kizashi /opt/kizashi
USER 10001:10001
ENTRYPOINT ["kizashi"]
CMD ["--help"]

FROM runtime AS ingest
EXPOSE 8001
CMD ["serve", "ingest"]

FROM runtime AS scoring
EXPOSE 8002
CMD ["serve", "scoring"]

FROM runtime AS triggers
EXPOSE 8003
CMD ["serve", "triggers"]

FROM runtime AS notifier
EXPOSE 8004
CMD ["serve", "notifier"]

FROM runtime AS console
EXPOSE 8005
CMD ["serve", "console"]
