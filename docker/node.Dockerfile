# A demo test machine: sshd, Python 3.11 with venv (what a deployed worker needs) and pytest (the demo's test
# tool). TestHub installs the product and deploys its worker here over SSH.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server procps \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd
RUN pip install --no-cache-dir pytest==8.4.2
COPY docker/node-entrypoint.sh /usr/local/bin/node-entrypoint.sh
EXPOSE 22
ENTRYPOINT ["/usr/local/bin/node-entrypoint.sh"]
