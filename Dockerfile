# pachstudio: Label Studio 1.23.2 + Pachyderm storage + FUSE mount server + embedded PFS server.
#
#   docker build -t pachstudio .            (scripts/docker-engine does it, with the pip CA as a secret)
#   docker run -it --rm -p 8080:8080 --device=/dev/fuse --cap-add SYS_ADMIN pachstudio
#
# No `# syntax=` line on purpose: the builder's built-in Dockerfile frontend is used, so the build
# needs no registry beyond the base image (RUN --mount needs BuildKit: DOCKER_BUILDKIT=1).
ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
# deps: a venv with every pinned dependency, keyed only on pyproject.toml and the constraints, so a
# change of our own source never reinstalls Label Studio.
FROM ${BASE_IMAGE} AS deps
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/pachstudio
ENV PATH=/opt/pachstudio/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml /src/pyproject.toml
COPY config/constraints.txt /src/constraints.txt
# The pip CA comes in as a BuildKit secret (only where a proxy needs it) and stays out of every layer.
RUN --mount=type=secret,id=pipcert,required=false \
    if [ -s /run/secrets/pipcert ]; then export PIP_CERT=/run/secrets/pipcert; fi \
 && python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies'] \
+ p['project']['optional-dependencies']['labelstudio']))" > /src/requirements.txt \
 && pip install -c /src/constraints.txt -r /src/requirements.txt \
 && pip check

# ---------------------------------------------------------------------------------------------
# templates: the migrations applied once, into an SQLite file and a PostgreSQL dump that a first
# start copies or loads instead of migrating from nothing (seconds instead of most of a minute).
# Label Studio's own migrations (keyed on the deps), then pachstudio's on top (keyed on our code).
# A throw-away PostgreSQL of Debian's package; only the two files leave this stage.
FROM deps AS templates
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint/ls_template.py /src/ls_template.py
RUN python /src/ls_template.py ls
RUN --mount=type=bind,target=/ctx,rw \
    pip install --no-cache-dir --no-deps --no-build-isolation --no-index /ctx \
 && rm -rf /ctx/build /ctx/src/*.egg-info \
 && python /src/ls_template.py app

# ---------------------------------------------------------------------------------------------
# The appliance: Debian's Python and libfuse, the venv, then our package (a small layer on top).
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title=pachstudio \
      org.opencontainers.image.description="Label Studio 1.23.2 with Pachyderm storage, FUSE mount server, embedded PFS server"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 fuse3 libfuse3-3 libarchive13 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Label Studio and the PFS server run as this user (fixed ids, so a /data volume keeps its owner
# across images); only the mount server stays root (config/supervisord.conf says why).
RUN groupadd --system --gid 999 pachstudio \
 && useradd --system --uid 999 --gid 999 --home-dir /home/pachstudio --create-home \
        --shell /usr/sbin/nologin pachstudio
COPY --from=deps /opt/pachstudio /opt/pachstudio
ENV PATH=/opt/pachstudio/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    LABEL_STUDIO_BASE_DATA_DIR=/data/label-studio \
    LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
    SENTRY_DSN= \
    FRONTEND_SENTRY_DSN= \
    LATEST_VERSION_CHECK=false \
    COLLECT_ANALYTICS=false \
    CONVERTER_DOWNLOAD_RESOURCES=false \
    PACHSTUDIO_MOUNT_API=http://127.0.0.1:9002 \
    PACHSTUDIO_MOUNT_DIR=/pfs
# Our package without touching the deps (they are all there: pip check ran above), and the frontend
# tile patched into Label Studio's bundle. The build context is bind-mounted, never copied in.
RUN --mount=type=bind,target=/ctx,rw \
    pip install --no-cache-dir --no-deps --no-build-isolation --no-index /ctx \
 && rm -rf /ctx/build /ctx/src/*.egg-info \
 && site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && python3 /ctx/patches/apply_frontend.py "$site/label_studio" \
 && python3 -c "import pachstudio.cli, pachstudio.mount.fs, label_studio, pachyderm_sdk, supervisor, gunicorn" \
 && mkdir -p /usr/local/lib/pachstudio \
 && find "$site" -path '*/migrations/*.py' -printf '%P %s\n' | sort | md5sum | cut -d' ' -f1 \
        > /usr/local/lib/pachstudio/migrations.fingerprint \
 && mkdir -p /pfs /data /docker-entrypoint-init.d
COPY --from=templates /opt/pachstudio/share/pachstudio/label_studio.sqlite3 \
     /opt/pachstudio/share/pachstudio/label_studio.pg.sql /opt/pachstudio/share/pachstudio/
COPY config/ /etc/pachstudio/
COPY entrypoint/ /usr/local/lib/pachstudio/
RUN ln -s /usr/local/lib/pachstudio/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh \
 && ln -s /usr/local/lib/pachstudio/healthcheck.sh /usr/local/bin/healthcheck

VOLUME /data
EXPOSE 8080 30650
# Healthy = every program this container runs answers (Label Studio, mount server, PFS server: a
# real gRPC call with a 3 s deadline, about 0.1 s of CPU a check, 0.5-1.5 s of wall time on a busy
# 2-core machine; the timeout leaves room for a slow start of its Python).
HEALTHCHECK --interval=5s --timeout=8s --start-period=180s --retries=3 CMD ["healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["appliance"]
