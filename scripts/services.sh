#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that the integration tests use are running on 127.0.0.1.
# Starts them with the machine's own service commands when they are down; installs them from
# Debian's packages when they are missing. Exits non-zero, naming the service, if one cannot
# be brought up.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] || return 1
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

wait_for() {  # wait_for NAME CHECK: poll CHECK for up to 30 s
  local i
  for i in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  return 1
}

if ! pg_up; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql postgresql-client
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1
  fi
  if wait_for postgres pg_up; then
    # The tests use database `test` with trust auth for root, as on the development machines.
    psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_roles where rolname='root'" 2>/dev/null | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -c "create role root superuser login" >/dev/null 2>&1
    psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1
  fi
fi
if ! redis_up; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1
  wait_for redis redis_up
fi

status=0
pg_up || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2; status=1; }
redis_up || { echo "services: Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2; status=1; }
[ $status = 0 ] && echo "services: PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379 are up"
exit $status
