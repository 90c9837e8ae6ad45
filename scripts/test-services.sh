#!/usr/bin/env bash
# Installs and starts what the test suite talks to; idempotent, and quick when all is there.
# System packages need root (CI runs as root); elsewhere it says what is missing.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)  # speech for the transcription tests
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]} ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
    exit 1
  fi
fi

# MariaDB: start it when it is down, and let root log in over TCP with an empty password.
if ! mariadb -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
  if ! mariadb-admin ping >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  mariadb -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" || true
  mariadb -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null || { echo "MariaDB is not reachable on 127.0.0.1:3306" >&2; exit 1; }
fi

# RabbitMQ
if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  rabbitmq-server -detached || true
  for _ in $(seq 90); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
  rabbitmq-diagnostics -q ping >/dev/null || { echo "RabbitMQ did not start" >&2; exit 1; }
fi
