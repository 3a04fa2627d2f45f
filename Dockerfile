# Container images of the Vigie fleet: one target per piece (design.md section 1).
#
#   docker-compose build                          # every image, as docker-compose.yml names them
#   docker build --target turbine-nox -t vigie/turbine-nox .
#
# Targets: one per piece of the fleet (`vigie pieces` lists them: the registry declared in
# services/vigie_services/pieces.py; vigie.ops.artifacts.check_dockerfile, run by tests/deploy,
# checks this file against it), and gateway. Build with BuildKit (Docker 23+ by default; docker-compose 1.29:
# DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1): it builds only the stages a target needs. The
# legacy builder works too but walks every stage before the target, which is why the stages that
# need trained models come last.
#
# A prediction image carries its service's model in service: `make models` first (it trains what
# is missing into models/). Only models/<service>/current and the version it names are copied, and
# the build fails (with the reason) unless that model loads and matches its card's sha256.
#
# Python code is not pip-installed: shared/vigie and the piece's own vigie_services/<piece> are
# copied to /app (PYTHONPATH), the dependencies of pyproject.toml live in the venv /opt/venv made
# in a builder stage. The project's entry points (the `vigie.pieces` group the runtime finds the
# pieces by) are written from pyproject.toml into a dist-info folder on that path. Prediction images pin scikit-learn, numpy and joblib to the versions their
# model was trained with (from its card): a pickle is only safe to load with those.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.26-alpine

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# ---------------------------------------------------------------------------------------------
# Builder: the dependencies of pyproject.toml, split in two lists: core (every piece) and ml (the
# model libraries, that only the prediction services import: auth, alerting and the gateway's
# config stage run without them, which tests/deploy/test_compose.py checks).
FROM base AS deps-core
WORKDIR /build
COPY pyproject.toml ./
RUN python -c "import re, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
ml = {'scikit-learn', 'scipy', 'pandas', 'threadpoolctl', 'onnx', 'onnxruntime', 'skl2onnx'}; \
name = lambda dep: re.match(r'[A-Za-z0-9._-]+', dep)[0].lower().replace('_', '-'); \
open('core.txt', 'w').write('\n'.join(d for d in deps if name(d) not in ml) + '\n'); \
open('ml.txt', 'w').write('\n'.join(d for d in deps if name(d) in ml) + '\n')"
# A venv without pip (the image's pip installs into it), and the `vigie` command.
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install -r core.txt \
 && printf '#!/opt/venv/bin/python\nimport sys\n\nfrom vigie.ops.cli import main\n\nsys.exit(main())\n' \
      > /opt/venv/bin/vigie \
 && chmod 755 /opt/venv/bin/vigie
# The entry points of pyproject.toml as installed metadata (dist-info/<name>-<version>.dist-info/),
# which importlib.metadata finds on PYTHONPATH: the registry of pieces reads `vigie.pieces` there.
RUN python -c "import pathlib, tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
name, version = project['name'], project['version']; \
info = pathlib.Path('dist-info', name + '-' + version + '.dist-info'); \
info.mkdir(parents=True); \
(info / 'METADATA').write_text('Metadata-Version: 2.1\nName: ' + name + '\nVersion: ' + version + '\n'); \
groups = project.get('entry-points', {}); \
(info / 'entry_points.txt').write_text(''.join('[' + g + ']\n' + ''.join(k + ' = ' + v + '\n' for k, v in groups[g].items()) + '\n' for g in groups))"

# ---------------------------------------------------------------------------------------------
# What every Python piece shares: the user (uid/gid 10001), the layout, the environment.
FROM base AS runtime
RUN groupadd --system --gid 10001 vigie \
 && useradd --system --uid 10001 --gid vigie --create-home --home-dir /home/vigie \
      --shell /usr/sbin/nologin vigie \
 && mkdir -p /app/var/spool /app/models \
 && chown vigie:vigie /app/var /app/var/spool
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/shared:/app/services \
    VIGIE_VAR_DIR=/app/var \
    VIGIE_MODELS_DIR=/app/models
WORKDIR /app

FROM runtime AS app-core
COPY --from=deps-core /opt/venv /opt/venv
COPY --from=deps-core /build/dist-info/ /app/services/
COPY shared/vigie/ /app/shared/vigie/
COPY services/vigie_services/__init__.py services/vigie_services/pieces.py /app/services/vigie_services/

# ---------------------------------------------------------------------------------------------
FROM app-core AS auth
COPY services/vigie_services/auth/ /app/services/vigie_services/auth/
RUN python -c "import vigie.ops.cli, vigie.serve.gunicorn_conf, vigie_services.auth.app, vigie_services.auth.piece" \
 && vigie pieces | grep -qx auth
USER 10001:10001
EXPOSE 8090
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8090/readyz', timeout=4)"]
CMD ["vigie", "serve", "auth", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
FROM app-core AS alerting
COPY services/vigie_services/alerting/ /app/services/vigie_services/alerting/
RUN python -c "import vigie.ops.cli, vigie.serve.gunicorn_conf, vigie_services.alerting.app, vigie_services.alerting.piece" \
 && vigie pieces | grep -qx alerting
USER 10001:10001
EXPOSE 8100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8100/readyz', timeout=4)"]
CMD ["vigie", "serve", "alerting", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
# The gateway's nginx.conf, rendered by `vigie fleet config` from nginx/nginx.conf.j2: listening
# on every address, each piece found at its own name (the compose and Kubernetes service names),
# TLS from /run/secrets, access log on stdout. Rendered as a non-root user, so without nginx's `user` directive (the gateway's
# master process does not run as root). Other VIGIE_FLEET_* settings (limits, timeouts,
# VIGIE_FLEET_SERVICES) go in the build argument GATEWAY_SETTINGS, space-separated NAME=value
# pairs without blanks in the values, e.g. "VIGIE_FLEET_CLIENT_RATE=50 VIGIE_FLEET_MAX_BODY=16m".
FROM app-core AS gateway-config
COPY nginx/nginx.conf.j2 /app/nginx/nginx.conf.j2
ARG GATEWAY_SETTINGS=""
USER 10001:10001
RUN env VIGIE_VAR_DIR=/tmp/vigie-var \
        VIGIE_FLEET_HOST=0.0.0.0 \
        VIGIE_FLEET_UPSTREAM_BY_NAME=true \
        ${GATEWAY_SETTINGS} \
    vigie fleet config --out /tmp/gateway/nginx.conf --no-check \
        --tls-cert /run/secrets/gateway.crt --tls-key /run/secrets/gateway.key \
        --access-log /dev/stdout

FROM ${NGINX_IMAGE} AS gateway
# nginx's prefix (pid file, temp files) is writable by its user; the config is not.
RUN mkdir -p /var/lib/vigie-gateway/tmp /var/lib/vigie-gateway/logs /etc/vigie-gateway \
 && chown -R nginx:nginx /var/lib/vigie-gateway
COPY --from=gateway-config /tmp/gateway/nginx.conf /etc/vigie-gateway/nginx.conf
USER 101:101
EXPOSE 8080 8443
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGQUIT
# No entrypoint script: the image's own edits /etc/nginx/conf.d, which this config does not use.
ENTRYPOINT []
CMD ["nginx", "-p", "/var/lib/vigie-gateway/", "-c", "/etc/vigie-gateway/nginx.conf", "-e", "stderr", "-g", "daemon off;"]

# ---------------------------------------------------------------------------------------------
# Models in service: models/<service>/current and the version it names, for each service that has
# one (a missing one fails the build of that service's image only, below). The versions of
# scikit-learn, numpy and joblib the models were trained with become pip constraints.
FROM base AS models
COPY models/ /src/models/
RUN set -eu; \
    for s in solar-flare gamma-classifier transformer-temperature turbine-nox energy-anomaly; do \
      mkdir -p "/models/$s"; \
      if [ -f "/src/models/$s/current" ]; then \
        v="$(cat "/src/models/$s/current")"; \
        cp -a "/src/models/$s/current" "/models/$s/current"; \
        cp -a "/src/models/$s/$v" "/models/$s/$v"; \
      else \
        echo "no model in service for $s under models/ (make models): its image will not build"; \
      fi; \
    done
RUN python -c "import json, pathlib, sys; \
cards = [json.loads(p.read_text()) for p in sorted(pathlib.Path('/models').glob('*/*/card.json'))]; \
seen = {}; \
[seen.setdefault(lib, set()).add(ver) for c in cards for lib, ver in c['libraries'].items() if lib != 'python']; \
mixed = {lib: sorted(v) for lib, v in seen.items() if len(v) > 1}; \
mixed and sys.exit(f'models trained with different library versions {mixed}: retrain them with one environment (make models)'); \
print(''.join(f'{lib}=={v.pop()}\n' for lib, v in sorted(seen.items())), end='')" > /constraints.txt \
 && cat /constraints.txt

FROM deps-core AS deps-ml
COPY --from=models /constraints.txt /build/constraints.txt
RUN pip --python /opt/venv/bin/python install -c constraints.txt -r core.txt -r ml.txt \
 && for p in numpy pandas scipy sklearn; do \
      find "/opt/venv/lib/python3.11/site-packages/$p" -depth -type d -name tests -exec rm -rf {} +; \
    done

FROM runtime AS app-ml
COPY --from=deps-ml /opt/venv /opt/venv
COPY --from=deps-core /build/dist-info/ /app/services/
COPY shared/vigie/ /app/shared/vigie/
COPY services/vigie_services/__init__.py services/vigie_services/pieces.py /app/services/vigie_services/

# ---------------------------------------------------------------------------------------------
# The prediction services: their package, their model (read-only for the service's user), a
# check at build time that both load, and /readyz (model loaded and verified) as health.
FROM app-ml AS solar-flare
COPY services/vigie_services/solar_flare/ /app/services/vigie_services/solar_flare/
COPY --from=models /models/solar-flare/ /app/models/solar-flare/
RUN python -c "from vigie.ops.registry import load; load().service_class('solar-flare')" \
 && vigie models show solar-flare > /dev/null
USER 10001:10001
EXPOSE 8101
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8101/readyz', timeout=4)"]
CMD ["vigie", "serve", "solar-flare", "--host", "0.0.0.0"]

FROM app-ml AS gamma-classifier
COPY services/vigie_services/gamma_classifier/ /app/services/vigie_services/gamma_classifier/
COPY --from=models /models/gamma-classifier/ /app/models/gamma-classifier/
RUN python -c "from vigie.ops.registry import load; load().service_class('gamma-classifier')" \
 && vigie models show gamma-classifier > /dev/null
USER 10001:10001
EXPOSE 8102
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8102/readyz', timeout=4)"]
CMD ["vigie", "serve", "gamma-classifier", "--host", "0.0.0.0"]

FROM app-ml AS transformer-temperature
COPY services/vigie_services/transformer_temperature/ /app/services/vigie_services/transformer_temperature/
COPY --from=models /models/transformer-temperature/ /app/models/transformer-temperature/
RUN python -c "from vigie.ops.registry import load; load().service_class('transformer-temperature')" \
 && vigie models show transformer-temperature > /dev/null
USER 10001:10001
EXPOSE 8103
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8103/readyz', timeout=4)"]
CMD ["vigie", "serve", "transformer-temperature", "--host", "0.0.0.0"]

FROM app-ml AS turbine-nox
COPY services/vigie_services/turbine_nox/ /app/services/vigie_services/turbine_nox/
COPY --from=models /models/turbine-nox/ /app/models/turbine-nox/
RUN python -c "from vigie.ops.registry import load; load().service_class('turbine-nox')" \
 && vigie models show turbine-nox > /dev/null
USER 10001:10001
EXPOSE 8104
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8104/readyz', timeout=4)"]
CMD ["vigie", "serve", "turbine-nox", "--host", "0.0.0.0"]

FROM app-ml AS energy-anomaly
COPY services/vigie_services/energy_anomaly/ /app/services/vigie_services/energy_anomaly/
COPY --from=models /models/energy-anomaly/ /app/models/energy-anomaly/
RUN python -c "from vigie.ops.registry import load; load().service_class('energy-anomaly')" \
 && vigie models show energy-anomaly > /dev/null
USER 10001:10001
EXPOSE 8105
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8105/readyz', timeout=4)"]
CMD ["vigie", "serve", "energy-anomaly", "--host", "0.0.0.0"]
