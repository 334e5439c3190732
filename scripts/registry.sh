#!/usr/bin/env bash
# Local Schema Registry for cafe: Apicurio Registry with its Confluent-compatible
# REST API, in-memory storage (H2), no auth, on 127.0.0.1:8081.
#
#   scripts/registry.sh up       build once (cached), start, wait until it answers
#   scripts/registry.sh down     stop gracefully (TERM, then KILL after a grace period)
#   scripts/registry.sh status   exit 0 if running and answering, 1 otherwise
#   scripts/registry.sh logs     print the log (logs -f to follow)
#   scripts/registry.sh url      print the base URL clients should use
#
# Clients use the plain base URL http://127.0.0.1:8081 with Confluent paths
# (/subjects/{s}/versions, /schemas/ids/{id}, /config, /compatibility/...).
# The same API is also under http://127.0.0.1:8081/apis/ccompat/v7.
#
# The first `up` builds the registry with Maven from registry/pom.xml into
# ${CAFE_CACHE:-$HOME/.cache/cafe}/registry-<version>-<recipe hash>/ (a private Maven local
# repository lives there during the build and is removed after it); later runs
# only start the cached build and do not touch the network.
#
# Environment:
#   CAFE_CACHE                 cache root (default $HOME/.cache/cafe)
#   CAFE_REGISTRY_PORT         port (default 8081)
#   CAFE_REGISTRY_JAVA         java binary (default: a JDK 17 under /usr/lib/jvm, else `java`)
#   CAFE_REGISTRY_JAVA_OPTS    JVM options (default -Xmx512m)
#   CAFE_REGISTRY_START_TIMEOUT  seconds to wait for readiness (default 180)
set -euo pipefail

VERSION=2.4.2.Final            # io.apicurio:apicurio-registry-app
QUARKUS_VERSION=2.16.4.Final   # the Quarkus version that Apicurio release is built on

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/registry"
# The cache key includes a hash of the build recipe (registry/), so editing it rebuilds.
RECIPE="$(cd "$SRC" && find pom.xml src config-index-steps/pom.xml config-index-steps/src -type f | LC_ALL=C sort |
  xargs cat | sha256sum | cut -c1-12)"
CACHE="${CAFE_CACHE:-$HOME/.cache/cafe}/registry-$VERSION-$RECIPE"
APP="$CACHE/app"
RUN="$ROOT/.run/registry"
PIDFILE="$RUN/registry.pid"
LOG="$RUN/registry.log"
HOST=127.0.0.1
PORT="${CAFE_REGISTRY_PORT:-8081}"
BASE="http://$HOST:$PORT"
TIMEOUT="${CAFE_REGISTRY_START_TIMEOUT:-180}"
JAVA_OPTS="${CAFE_REGISTRY_JAVA_OPTS:--Xmx512m}"

log() { echo "registry: $*" >&2; }
die() { log "$*"; exit 1; }

find_java() {
  if [ -n "${CAFE_REGISTRY_JAVA:-}" ]; then echo "$CAFE_REGISTRY_JAVA"; return; fi
  local j
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
    [ -x "$j" ] && { echo "$j"; return; }
  done
  command -v java >/dev/null 2>&1 || die "no java found (need Java 17+; set CAFE_REGISTRY_JAVA)"
  echo java
}

java_home_of() { # JAVA_HOME for Maven, derived from the java binary
  local j; j="$(readlink -f "$(command -v "$1")")"
  dirname "$(dirname "$j")"
}

pid_alive() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

answering() {
  curl -sf -o /dev/null --max-time 5 "$BASE/subjects" &&
    curl -sf -o /dev/null --max-time 5 "$BASE/health/ready"
}

port_busy() {
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

build() {
  [ -f "$APP/registry-runner.jar" ] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to build the registry)"
  local java jh m2 out
  java="$(find_java)"; jh="$(java_home_of "$java")"
  m2="$CACHE/m2"; out="$CACHE/build"
  mkdir -p "$CACHE"
  log "building Apicurio Registry $VERSION into $CACHE (one-time; downloads from the Maven registry)"
  local mvnflags=(-B -Dmaven.repo.local="$m2" -Dstyle.color=never)
  local blog="$CACHE/build.log"; : >"$blog"
  log "(maven output: $blog)"
  # 1. our build step under the coordinates of the unpublished Quarkus deployment module (into the private repo)
  JAVA_HOME="$jh" mvn "${mvnflags[@]}" -f "$SRC/config-index-steps/pom.xml" \
      -DbuildDir="$out/config-index-steps" install >>"$blog" 2>&1 \
    || { tail -n 30 "$blog" >&2; die "building registry/config-index-steps failed (see $blog)"; }
  # 2. augment the app into a runnable jar
  JAVA_HOME="$jh" mvn "${mvnflags[@]}" -f "$SRC/pom.xml" \
      -Dapicurio.version="$VERSION" -Dquarkus.version="$QUARKUS_VERSION" \
      -DbuildDir="$out/app" package >>"$blog" 2>&1 \
    || { tail -n 30 "$blog" >&2; die "building registry/pom.xml failed (see $blog)"; }
  # A glob, not `ls | head -n1`: under pipefail, head exiting first can fail the
  # pipeline (SIGPIPE) and set -e would end the script.
  local runners=("$out"/app/*-runner.jar) runner
  runner="${runners[0]}"
  [ -f "$runner" ] && [ -d "$out/app/lib" ] || die "build produced no runner jar under $out/app"
  rm -rf "$APP.tmp"; mkdir -p "$APP.tmp"
  cp -r "$out/app/lib" "$APP.tmp/lib"
  cp "$runner" "$APP.tmp/registry-runner.jar"   # its manifest Class-Path points at lib/
  rm -rf "$APP"; mv "$APP.tmp" "$APP"
  rm -rf "$out" "$m2"
  log "build cached in $APP"
}

cmd_up() {
  if pid_alive; then
    if answering; then log "already running (pid $(cat "$PIDFILE")) at $BASE"; return 0; fi
    log "process $(cat "$PIDFILE") exists but does not answer yet; waiting"
  else
    rm -f "$PIDFILE"
    port_busy && die "port $PORT on $HOST is already in use by another process"
    build
    local java; java="$(find_java)"
    mkdir -p "$RUN"
    : >"$LOG"
    # One worker thread: Apicurio 2.4 with H2 races when several subjects are
    # registered at once (unique-index 500s, spurious 409 "already exists"), and
    # parallel tests do that. Serialised, every request succeeds; speed is moot here.
    # shellcheck disable=SC2086
    (cd "$RUN" && exec setsid "$java" $JAVA_OPTS \
        -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$PORT" \
        -Dquarkus.thread-pool.core-threads=1 -Dquarkus.thread-pool.max-threads=1 \
        -Dregistry.auth.enabled=false \
        -Dquarkus.datasource.jdbc.url="jdbc:h2:mem:registry_db" \
        -Dregistry.events.ksink= \
        -Dquarkus.log.console.color=false \
        -jar "$APP/registry-runner.jar" >>"$LOG" 2>&1 </dev/null) &
    echo $! >"$PIDFILE"
    log "started pid $(cat "$PIDFILE"), log $LOG"
  fi
  local start=$SECONDS
  until answering; do
    pid_alive || { tail -n 40 "$LOG" >&2 || true; die "process exited during start-up"; }
    [ $((SECONDS - start)) -ge "$TIMEOUT" ] && { tail -n 40 "$LOG" >&2 || true; die "not answering after ${TIMEOUT}s"; }
    sleep 0.5
  done
  log "ready at $BASE after $((SECONDS - start))s (Confluent API also at $BASE/apis/ccompat/v7)"
}

cmd_down() {
  if ! pid_alive; then rm -f "$PIDFILE"; log "not running"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "still alive after 30s; sending KILL to $pid"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

cmd_status() {
  if pid_alive; then
    if answering; then
      echo "running (pid $(cat "$PIDFILE")) at $BASE"; return 0
    fi
    echo "starting or unhealthy (pid $(cat "$PIDFILE")), not answering at $BASE"; return 1
  fi
  echo "stopped"; return 1
}

cmd_logs() {
  [ -f "$LOG" ] || die "no log at $LOG"
  if [ "${1:-}" = "-f" ]; then exec tail -n 100 -f "$LOG"; fi
  cat "$LOG"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  url) echo "$BASE" ;;
  build) build ;;
  *) echo "usage: $0 up|down|status|logs [-f]|url|build" >&2; exit 2 ;;
esac
