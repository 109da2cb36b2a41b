# The app image: the demo site served by an ASGI server with several worker processes.
# Built by docker-compose.yml (Redis) or docker-compose.postgres.yml (PostgreSQL); nginx (a
# separate service) sits in front of the replicas.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv

# Dependencies first, so editing the code does not reinstall them.
COPY pyproject.toml README.md ./
COPY sessions ./sessions
COPY auth ./auth
RUN pip install .

COPY app.py ./
COPY deploy ./deploy
COPY templates ./templates
COPY static ./static

# Never run the web server as root. The app creates its instance folder at start-up (empty
# with Redis or PostgreSQL and SECRET_KEY set), so that one folder is the user's.
RUN useradd --system --no-create-home --uid 10001 web \
    && mkdir -p /srv/instance && chown web /srv/instance
USER web

EXPOSE 8000
# granian (the fastest of the servers we measured, bench/servers/) with several worker processes.
# It listens on every interface of the container, but X-Forwarded-* count only on connections
# from TRUSTED_PROXIES (nginx's address, set by docker-compose.yml; deploy/proxies.py), and
# only the hop nginx wrote. exec: granian gets SIGTERM from `docker stop` itself and stops
# gracefully (in-flight requests finish).
# --http1-buffer-size: a request head over 32 KiB is a 431 (deploy/servers.py MAX_REQUEST_HEAD).
CMD exec granian --interface asgi --host 0.0.0.0 --port 8000 --loop uvloop \
    --workers "${WEB_CONCURRENCY:-2}" --workers-kill-timeout 10 --http1-buffer-size 32768 \
    deploy.asgi:app
