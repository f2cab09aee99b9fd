# CareWeave FHIR server image. Build: docker build -t careweave .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FHIR_PROFILES_DIR=/app/profiles
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY profiles ./profiles
RUN pip install . && useradd --system --uid 10001 careweave
USER careweave
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"
CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
