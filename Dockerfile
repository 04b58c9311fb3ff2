# alchemiser daemon image: slim Python, non-root, `alchemiser run` as the entrypoint.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alchemiser ./alchemiser
COPY migrations ./migrations
COPY config ./config
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ALCHEMISER_CONFIG=/app/config/alchemiser.toml
RUN useradd --system --create-home --home-dir /app --uid 10001 alchemiser
COPY --from=build /install /usr/local
WORKDIR /app
COPY --chown=alchemiser:alchemiser config ./config
RUN mkdir -p /app/var && chown alchemiser:alchemiser /app/var
USER alchemiser
VOLUME ["/app/var"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s CMD ["alchemiser", "status"]
ENTRYPOINT ["alchemiser"]
CMD ["run"]
