# A demo test machine: sshd (for the control plane's SSH work) and the TestHub worker, with the demo product
# and pytest installed under /opt/testhub/<node name>.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server procps \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd
WORKDIR /opt/testhub-agent
COPY worker/requirements.txt worker/requirements.txt
RUN pip install --no-cache-dir -r worker/requirements.txt pytest==8.4.2
COPY worker worker
COPY testhub/demo/calculator /opt/testhub-demo/calculator
COPY docker/node-entrypoint.sh /usr/local/bin/node-entrypoint.sh
EXPOSE 22
ENTRYPOINT ["/usr/local/bin/node-entrypoint.sh"]
