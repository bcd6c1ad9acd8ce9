# The control plane: web, control worker, beat and Flower all run this image with different commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TESTHUB_DATA_DIR=/var/lib/testhub
RUN apt-get update && apt-get install -y --no-install-recommends procps && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /var/lib/testhub testhub && mkdir -p /var/lib/testhub && chown testhub /var/lib/testhub
USER testhub
EXPOSE 8000 5555
CMD ["gunicorn", "testhub.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
