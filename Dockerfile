# The web front end, built in a Node stage: only its dist/ goes into the control plane's image.
FROM node:20-slim AS frontend
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# The control plane: web, control worker, beat and Flower all run this image with different commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TESTHUB_DATA_DIR=/var/lib/testhub
RUN apt-get update && apt-get install -y --no-install-recommends procps && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=frontend /frontend/dist /app/frontend/dist
RUN useradd --system --home /var/lib/testhub testhub && mkdir -p /var/lib/testhub && chown testhub /var/lib/testhub
USER testhub
EXPOSE 8000 5555
CMD ["gunicorn", "testhub.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
