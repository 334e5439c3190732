#!/usr/bin/env bash
# Run a real Apache Kafka (KRaft, no ZooKeeper, no Docker) on loopback for cafe's
# integration tests, from plain jars fetched with Maven (see kafka/pom.xml).
#
# Usage: scripts/kafka.sh <command> [args]
#   fetch                      download the broker/tool jars into the cache (once)
#   up      [--nodes 1|3] [--wipe]
#                              start a single node (default) or a 3-node cluster;
#                              keeps the existing data unless --wipe; no-op if already up
#   up      --secure [--wipe]  start the secured broker (TLS, SASL, ACLs; see below)
#   down    [--nodes 1|3 | --secure] [--wipe]
#                              SIGTERM, wait up to 30 s, then SIGKILL; --wipe deletes data
#   restart                    down + up of the single node (data kept)
#   kill    <node-id>|single   kill -9 one node (cluster node 1..3, or the single node)
#   start   <node-id>|single   start that one node again on its existing storage
#   status                     what runs where
#   logs    [--nodes 1|3] [-f] [-n N]
#                              tail the broker log(s)
#   tool    <alias|MainClass> args...
#                              run a Kafka CLI tool, logging WARN+ to stderr only. Aliases:
#                              topics console-consumer console-producer consumer-groups
#                              producer-perf consumer-perf broker-api-versions metadata-quorum
#                              get-offsets delete-records configs storage
#
# Layout (single node):  client 127.0.0.1:9092, controller 127.0.0.1:9093 (see CAFE_KAFKA_PORT)
# Layout (3 nodes):      node N (1..3): client 127.0.0.1:1909(N+1), controller 127.0.0.1:2909(N+1)
#                        i.e. clients 19092,19093,19094 and controllers 29092,29093,29094
# Layout (--secure):     one more broker from the same jars, ACLs on (StandardAuthorizer):
#                        127.0.0.1:9392 SSL, 9393 SASL_SSL, 9394 SASL_PLAINTEXT,
#                        9396 SSL with a required client certificate (mTLS), controller 9395.
#                        SASL mechanisms PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
#                        (Kafka's unsecured JWT validator); SASL_PLAINTEXT lacks SCRAM-SHA-512
#                        and ends SASL sessions after 10 s (KIP-368 re-authentication). Users (password = <name>-secret):
#                        admin (super user), bob (no ACLs until a test adds them). TLS
#                        clients without a certificate are User:ANONYMOUS and the mTLS
#                        client is User:cafe-client, both super users. A throwaway CA,
#                        the broker's certificate (for IP 127.0.0.1 only, so `localhost`
#                        is a wrong host name), a client certificate, an unrelated CA
#                        and admin.properties for the Java tools are made at first start
#                        under .run/kafka/secure/tls/ (see secure_files).
#
# Files:  jars     ${CAFE_CACHE:-$HOME/.cache/cafe}/kafka-<version>/libs
#         runtime  <repo>/.run/kafka/single/   and  <repo>/.run/kafka/node{1,2,3}/
#                  each holding server.properties, server.log, pid, data/;
#                  the cluster's shared cluster-id and initial-controllers sit in .run/kafka/
#
# Data survives down/up (and kill/start); only --wipe deletes it. After `kill`, the
# controller fences the dead broker after broker.session.timeout.ms (4 s on the
# 3-node cluster, 9 s default on the single node).
#
# Environment:
#   CAFE_CACHE          download cache (default $HOME/.cache/cafe, shared by all clones)
#   CAFE_KAFKA_HEAP     broker heap (default 1g)
#   CAFE_KAFKA_WAIT     seconds to wait for a broker to answer (default 90)
#   CAFE_KAFKA_STOP_WAIT  seconds between SIGTERM and SIGKILL on down (default 30)
#   CAFE_KAFKA_PORT     single node's client port (default 9092; controller = port+1,
#                       or CAFE_KAFKA_CONTROLLER_PORT)
#   CAFE_KAFKA_SECURE_PORT  the secured broker's SSL port (default 9392); SASL_SSL,
#                       SASL_PLAINTEXT, controller and mTLS follow at +1 .. +4
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$REPO/kafka/pom.xml"
# The pom is the single source of truth for the version.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
CACHE="${CAFE_CACHE:-$HOME/.cache/cafe}"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
RUN="$REPO/.run/kafka"
HEAP="${CAFE_KAFKA_HEAP:-1g}"
WAIT_SECS="${CAFE_KAFKA_WAIT:-90}"
STOP_WAIT="${CAFE_KAFKA_STOP_WAIT:-30}"
HOST=127.0.0.1
# The single node's ports can move (e.g. to run a second checkout's CI beside a
# developer's broker); the 3-node cluster's ports are fixed.
SINGLE_PORT="${CAFE_KAFKA_PORT:-9092}"
SINGLE_CONTROLLER_PORT="${CAFE_KAFKA_CONTROLLER_PORT:-$((SINGLE_PORT + 1))}"

# Progress goes to stderr so that `tool` output (and final status lines) stay parseable.
say() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# jars

# The marker holds a hash of the pom: when the pom changes (new version, extra
# dependency) the libs are fetched again; otherwise fetch never runs Maven, so a
# second run works offline.
pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

cmd_fetch() {
    local marker="$LIBS/.complete"
    if [[ -f "$marker" && "$(cat "$marker")" == "$(pom_hash)" ]]; then
        say "jars for Kafka $KAFKA_VERSION already in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (install Maven 3.8+ and Java 17)"
    say "fetching Kafka $KAFKA_VERSION jars into $LIBS (Maven)..."
    # Copy into a fresh temp dir and swap it in: copy-dependencies never deletes,
    # so re-using the old dir would leave stale jars (e.g. two slf4j-api versions)
    # on the classpath.
    local tmp="$LIBS.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$LIBS")"
    # (Debian's Maven 3.8 prints bare colour resets even with -B; strip them.)
    mvn -q -B -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
        || { rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"; }
    [[ -n "$(ls "$tmp"/kafka_2.13-*.jar 2>/dev/null)" ]] || { rm -rf "$tmp"; die "no kafka jar fetched"; }
    pom_hash >"$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    say "fetched $(ls "$LIBS"/*.jar | wc -l) jars"
}

ensure_libs() {
    [[ -f "$LIBS/.complete" && "$(cat "$LIBS/.complete")" == "$(pom_hash)" ]] || cmd_fetch
}

# Start-up flags for short-lived tool JVMs: C1 only and a small heap start
# noticeably faster on 2 shared cores; the tools do little work.
TOOL_JVM=(-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$REPO/kafka/log4j2-tools.properties")

java_tool() { # java_tool <MainClass> args...
    java "${TOOL_JVM[@]}" -cp "$LIBS/*" "$@"
}

# Aliases map to the main classes inside the 4.1 jars (checked with unzip -l).
tool_class() {
    case "$1" in
        topics)              echo org.apache.kafka.tools.TopicCommand ;;
        console-consumer)    echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
        console-producer)    echo org.apache.kafka.tools.ConsoleProducer ;;
        consumer-groups)     echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
        producer-perf)       echo org.apache.kafka.tools.ProducerPerformance ;;
        consumer-perf)       echo org.apache.kafka.tools.ConsumerPerformance ;;
        broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
        metadata-quorum)     echo org.apache.kafka.tools.MetadataQuorumCommand ;;
        get-offsets)         echo org.apache.kafka.tools.GetOffsetShell ;;
        delete-records)      echo org.apache.kafka.tools.DeleteRecordsCommand ;;
        configs)             echo kafka.admin.ConfigCommand ;;
        storage)             echo kafka.tools.StorageTool ;;
        *.*)                 echo "$1" ;;   # a fully qualified class name
        *) die "unknown tool '$1' (aliases: topics console-consumer console-producer consumer-groups producer-perf consumer-perf broker-api-versions metadata-quorum get-offsets delete-records configs storage, or a main class)" ;;
    esac
}

cmd_tool() {
    [[ $# -ge 1 ]] || die "usage: kafka.sh tool <alias|MainClass> args..."
    local class
    class="$(tool_class "$1")"
    shift
    ensure_libs
    exec java "${TOOL_JVM[@]}" -cp "$LIBS/*" "$class" "$@"
}

# ---------------------------------------------------------------------------
# nodes
#
# A "node" is a name: "single" (the default broker on 9092) or "1".."3" (the
# 3-node cluster). Everything about a node is derived from its name.

node_dir() {
    case $1 in single | secure) echo "$RUN/$1" ;; *) echo "$RUN/node$1" ;; esac
}
node_id() { [[ $1 == single || $1 == secure ]] && echo 1 || echo "$1"; }
# The secure node's "client port" (the one probed for liveness) is its
# SASL_PLAINTEXT listener, which the admin tools use.
# CAFE_KAFKA_SECURE_PORT moves all five (e.g. a benchmark's own secured broker).
SECURE_SSL_PORT="${CAFE_KAFKA_SECURE_PORT:-9392}"
SECURE_SASL_SSL_PORT=$((SECURE_SSL_PORT + 1)) SECURE_SASL_PORT=$((SECURE_SSL_PORT + 2))
SECURE_CONTROLLER_PORT=$((SECURE_SSL_PORT + 3)) SECURE_MTLS_PORT=$((SECURE_SSL_PORT + 4))
client_port() {
    case $1 in single) echo "$SINGLE_PORT" ;; secure) echo "$SECURE_SASL_PORT" ;; *) echo $((19091 + $1)) ;; esac
}
controller_port() {
    case $1 in
        single) echo "$SINGLE_CONTROLLER_PORT" ;;
        secure) echo "$SECURE_CONTROLLER_PORT" ;;
        *) echo $((29091 + $1)) ;;
    esac
}
nodes_for() {
    case $1 in 1) echo single ;; secure) echo secure ;; *) echo "1 2 3" ;; esac
}

check_node() {
    case "$1" in single | secure | 1 | 2 | 3) ;; *) die "unknown node '$1' (expected single, secure, 1, 2 or 3)" ;; esac
}

# The pid of a running node, or nothing. Checks the command line too, so a
# stale pid file whose pid was re-used by another process is not mistaken for Kafka.
node_pid() {
    local f
    f="$(node_dir "$1")/pid"
    [[ -f "$f" ]] || return 0
    local pid cmdline
    pid="$(cat "$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    # Read the command line into a variable, then match it in bash. Not
    # `tr ... | grep -q ...`: under pipefail, grep -q exits at its match, tr can die
    # of SIGPIPE, the pipeline returns 141 and a live node reads as dead.
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 0
    if [[ $cmdline == *"kafka.Kafka $(node_dir "$1")/server.properties"* ]]; then
        echo "$pid"
    fi
}

# Cheap TCP probe with bash's /dev/tcp (no JVM start).
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

write_props() { # write_props <node>
    if [[ $1 == secure ]]; then
        write_secure_props
        return
    fi
    local node=$1 dir id cport kport
    dir="$(node_dir "$node")"
    id="$(node_id "$node")"
    cport="$(client_port "$node")"
    kport="$(controller_port "$node")"
    local bootstrap rf minisr
    if [[ $node == single ]]; then
        bootstrap="$HOST:$SINGLE_CONTROLLER_PORT"
        rf=1
        minisr=1
    else
        bootstrap="$HOST:29092,$HOST:29093,$HOST:29094"
        rf=3
        minisr=2
    fi
    # The fault suite kills nodes with -9: let the controller fence a dead broker
    # after 4 s instead of the default 9 s (heartbeats every second, not 2 s).
    # KIP-848 groups keep their session timeout and heartbeat interval on the
    # broker, 45 s and 5 s at least by default: lower the floors so the fault
    # suite can give such a group (as its `consumer.*` group configs) the same
    # 6-10 s session and 1 s heartbeat it gives classic members. The defaults
    # stay Kafka's.
    local liveness=""
    [[ $node == single ]] || liveness="broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
group.consumer.min.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=1000"
    mkdir -p "$dir/data"
    # Regenerated on every start so edits here apply; the cluster id lives in
    # data/meta.properties and survives.
    cat >"$dir/server.properties" <<EOF
# Generated by scripts/kafka.sh -- edit the script, not this file.
process.roles=broker,controller
node.id=$id
controller.quorum.bootstrap.servers=$bootstrap
listeners=PLAINTEXT://$HOST:$cport,CONTROLLER://$HOST:$kport
advertised.listeners=PLAINTEXT://$HOST:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data

# Internal topics: replicated as far as the node count allows.
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$minisr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$minisr
default.replication.factor=$rf
min.insync.replicas=$minisr

# Tests create their own topics explicitly, with 3 partitions by default;
# auto-creation would hide bugs in metadata handling.
num.partitions=3
auto.create.topics.enable=false

# Don't make the first consumer of a group wait 3 s for others to join.
group.initial.rebalance.delay.ms=0

# Small test machine (2 shared cores): fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
$liveness
EOF
}

# ---------------------------------------------------------------------------
# the secured node (up --secure)

# Throwaway TLS material and the Java tools' client properties, made once (kept
# with the data; --wipe makes new ones). Everything is PEM, which rustls,
# librdkafka and Kafka itself (ssl.keystore.type=PEM) all read.
secure_files() {
    local tls
    tls="$(node_dir secure)/tls"
    [[ -f $tls/.complete ]] && return 0
    command -v openssl >/dev/null || die "openssl not found (needed to make the secure broker's certificates)"
    rm -rf "$tls"
    mkdir -p "$tls"
    say "making a throwaway CA and certificates in $tls"
    (
        cd "$tls"
        local ca=(-CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650)
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cafe test CA" \
            -keyout ca-key.pem -out ca.pem 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=some other CA" \
            -keyout other-ca-key.pem -out other-ca.pem 2>/dev/null
        # The broker's certificate names IP 127.0.0.1 only: `localhost` is then
        # the "wrong host name" case.
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker-key.pem -out broker.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
        openssl x509 -req -in broker.csr "${ca[@]}" -extfile broker.ext -out broker.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=cafe-client" -keyout client-key.pem -out client.csr 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr "${ca[@]}" -extfile client.ext -out client.pem 2>/dev/null
        # Kafka's PEM keystore: the PKCS#8 key and the chain in one file.
        openssl pkcs8 -topk8 -nocrypt -in broker-key.pem -out broker-key.p8
        cat broker-key.p8 broker.pem >broker-keystore.pem
        # For the Java tools (kafka-acls, the readiness probe): SASL_PLAINTEXT as admin.
        {
            echo "security.protocol=SASL_PLAINTEXT"
            echo "sasl.mechanism=PLAIN"
            echo 'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";'
        } >admin.properties
    ) || die "making the certificates failed"
    touch "$tls/.complete"
}

write_secure_props() {
    local dir tls jaas_plain listener per_listener=""
    dir="$(node_dir secure)"
    tls="$dir/tls"
    mkdir -p "$dir/data"
    # PLAIN users are the user_<name> options; the broker itself logs in as admin.
    jaas_plain='org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_bob="bob-secret";'
    for listener in sasl_ssl sasl_plaintext; do
        per_listener+="listener.name.$listener.plain.sasl.jaas.config=$jaas_plain
listener.name.$listener.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.$listener.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.$listener.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"admin\";
listener.name.$listener.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler
"
    done
    cat >"$dir/server.properties" <<EOF
# Generated by scripts/kafka.sh (up --secure) -- edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$SECURE_CONTROLLER_PORT
listeners=SSL://$HOST:$SECURE_SSL_PORT,SASL_SSL://$HOST:$SECURE_SASL_SSL_PORT,SASL_PLAINTEXT://$HOST:$SECURE_SASL_PORT,MTLS://$HOST:$SECURE_MTLS_PORT,CONTROLLER://$HOST:$SECURE_CONTROLLER_PORT
advertised.listeners=SSL://$HOST:$SECURE_SSL_PORT,SASL_SSL://$HOST:$SECURE_SASL_SSL_PORT,SASL_PLAINTEXT://$HOST:$SECURE_SASL_PORT,MTLS://$HOST:$SECURE_MTLS_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=SSL:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,MTLS:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
# One mechanism less on SASL_PLAINTEXT: the "mechanism not enabled" case.
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,OAUTHBEARER
# KIP-368: sessions on SASL_PLAINTEXT end after 10 s, so clients must re-authenticate
# (tests/security.rs checks cafe does); the other listeners keep Kafka's default (none).
listener.name.sasl_plaintext.connections.max.reauth.ms=10000
log.dirs=$dir/data

# TLS: PEM files made by secure_files.
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
# The mTLS client's principal is its certificate's CN (User:cafe-client).
ssl.principal.mapping.rules=RULE:^CN=([^,]*).*\$/\$1/,DEFAULT

# SASL: PLAIN users in the JAAS line, SCRAM users made at format time.
$per_listener
# ACLs. ANONYMOUS: the controller listener and TLS clients without a certificate.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS;User:cafe-client
allow.everyone.if.no.acl.found=false

offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=3
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF
}

# Format the storage once; later starts reuse it (and its data).
format_storage() { # format_storage <node> [initial-controllers]
    local node=$1 dir
    dir="$(node_dir "$node")"
    [[ -f "$dir/data/meta.properties" ]] && return 0
    local cid
    if [[ $node == secure ]]; then
        cid="$(java_tool kafka.tools.StorageTool random-uuid)"
        say "formatting $dir/data (cluster id $cid, SCRAM users admin and bob)"
        local scram=() mech user
        for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
            for user in admin bob; do scram+=(--add-scram "$mech=[name=$user,password=$user-secret]"); done
        done
        java_tool kafka.tools.StorageTool format --standalone -t "$cid" -c "$dir/server.properties" "${scram[@]}" >&2
    elif [[ $node == single ]]; then
        cid="$(java_tool kafka.tools.StorageTool random-uuid)"
        say "formatting $dir/data (cluster id $cid, standalone KRaft quorum)"
        java_tool kafka.tools.StorageTool format --standalone -t "$cid" -c "$dir/server.properties" >&2
    else
        cid="$(cat "$RUN/cluster-id")"
        say "formatting $dir/data (cluster id $cid, 3 initial controllers)"
        java_tool kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
            --initial-controllers "$2" >&2
    fi
}

launch() { # launch <node>: start the JVM in the background
    local node=$1 dir
    dir="$(node_dir "$node")"
    # The log is appended across restarts (a fault test wants to see before and
    # after a crash); rotate it once it passes 50 MiB so it cannot grow forever.
    if [[ -f "$dir/server.log" ]] && (($(stat -c %s "$dir/server.log") > 50 * 1024 * 1024)); then
        mv -f "$dir/server.log" "$dir/server.log.1"
    fi
    # setsid: the broker must outlive the shell (make, CI step, editor job) that
    # started it and must not get its Ctrl+C. nohup for the same reason (SIGHUP).
    # Without job control, setsid execs in place, so $! is the java pid.
    nohup setsid java -Xmx"$HEAP" -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$REPO/kafka/log4j2-broker.properties" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        >>"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    say "started node $node (pid $!), log $dir/server.log"
}

# Wait until every given node accepts connections and an admin client gets an
# answer through all of them. Fails with the log tail if a JVM dies or time runs out.
wait_ready() { # wait_ready <node>...
    local deadline=$((SECONDS + WAIT_SECS)) node bootstrap=""
    for node in "$@"; do bootstrap+="${bootstrap:+,}$HOST:$(client_port "$node")"; done
    while :; do
        local all_open=1
        for node in "$@"; do
            if [[ -z "$(node_pid "$node")" ]]; then
                tail_logs 40 "$node" >&2
                die "node $node exited during start-up (log above: $(node_dir "$node")/server.log)"
            fi
            port_open "$(client_port "$node")" || all_open=0
        done
        if ((all_open)); then
            # A listening socket is not enough: the broker answers metadata only
            # once it has caught up with the metadata log. The per-node probe makes
            # sure each node answers itself, not just one of them.
            local ok=1
            for node in "$@"; do
                # (timeout needs a program, not a shell function: call java directly.)
                local auth=()
                [[ $node == secure ]] && auth=(--command-config "$(node_dir secure)/tls/admin.properties")
                timeout 30 java "${TOOL_JVM[@]}" -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
                    --bootstrap-server "$HOST:$(client_port "$node")" "${auth[@]}" --list >/dev/null 2>&1 ||
                    { ok=0; break; }
            done
            ((ok)) && return 0
        fi
        if ((SECONDS >= deadline)); then
            for node in "$@"; do tail_logs 40 "$node" >&2; done
            die "Kafka did not answer on $bootstrap within ${WAIT_SECS}s"
        fi
        sleep 1
    done
}

tail_logs() { # tail_logs <lines> <node>...
    local n=$1 node
    shift
    for node in "$@"; do
        local log
        log="$(node_dir "$node")/server.log"
        [[ -f "$log" ]] || continue
        echo "==> $log <=="
        tail -n "$n" "$log"
    done
}

# Refuse to start on a port somebody else holds: the tests would talk to the
# wrong broker and fail in confusing ways.
check_ports_free() { # check_ports_free <node>
    local p ports=("$(client_port "$1")" "$(controller_port "$1")")
    [[ $1 == secure ]] && ports+=("$SECURE_SSL_PORT" "$SECURE_SASL_SSL_PORT" "$SECURE_MTLS_PORT")
    for p in "${ports[@]}"; do
        if port_open "$p"; then
            die "port $p is in use by another process (not our node $1); stop it first (ss -ltnp | grep :$p)"
        fi
    done
}

# Stop nodes: SIGTERM to all at once (in a 3-node cluster, stopping one by one can
# leave the last node waiting for a quorum that is gone), then SIGKILL stragglers.
stop_nodes() { # stop_nodes <node>...
    local node pids=() pid
    for node in "$@"; do
        pid="$(node_pid "$node")"
        if [[ -n "$pid" ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            say "stopping node $node (pid $pid)"
        fi
    done
    local deadline=$((SECONDS + STOP_WAIT))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid still running after ${STOP_WAIT} s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for node in "$@"; do rm -f "$(node_dir "$node")/pid"; done
}

parse_nodes() { # sets NODES (1|3), WIPE, FOLLOW, LINES from the remaining args
    NODES=1 WIPE=0 FOLLOW=0 LINES=50
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --nodes) NODES="${2:-}"; shift 2 ;;
            --nodes=*) NODES="${1#*=}"; shift ;;
            --secure) NODES=secure; shift ;;
            --wipe) WIPE=1; shift ;;
            -f | --follow) FOLLOW=1; shift ;;
            -n) LINES="${2:-50}"; shift 2 ;;
            *) die "unknown option '$1'" ;;
        esac
    done
    [[ $NODES == 1 || $NODES == 3 || $NODES == secure ]] || die "--nodes must be 1 or 3"
}

bootstrap_of() { # bootstrap_of 1|3|secure
    case $1 in
        1) echo "$HOST:$SINGLE_PORT" ;;
        secure)
            echo "$HOST:$SECURE_SSL_PORT (SSL), $SECURE_SASL_SSL_PORT (SASL_SSL)," \
                "$SECURE_SASL_PORT (SASL_PLAINTEXT), $SECURE_MTLS_PORT (mTLS)"
            ;;
        *) echo "$HOST:19092,$HOST:19093,$HOST:19094" ;;
    esac
}

# ---------------------------------------------------------------------------
# commands

cmd_up() {
    parse_nodes "$@"
    local nodes node started=0 t0=$SECONDS
    read -ra nodes <<<"$(nodes_for "$NODES")"
    local what="Kafka $KAFKA_VERSION"
    [[ $NODES == 3 ]] && what="Kafka $KAFKA_VERSION 3-node cluster"
    [[ $NODES == secure ]] && what="Kafka $KAFKA_VERSION secured broker"

    ensure_libs
    command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"

    if ((WIPE)); then
        stop_nodes "${nodes[@]}"
        for node in "${nodes[@]}"; do rm -rf "$(node_dir "$node")"; done
        [[ $NODES == 3 ]] && rm -f "$RUN/cluster-id" "$RUN/initial-controllers"
    fi

    # Idempotent: if every node runs and answers, there is nothing to do.
    local all_up=1
    for node in "${nodes[@]}"; do
        [[ -n "$(node_pid "$node")" ]] && port_open "$(client_port "$node")" || all_up=0
    done
    if ((all_up)); then
        echo "$what already up on $(bootstrap_of "$NODES")"
        return 0
    fi

    # 3-node: one cluster id and one set of (node, directory id) voters shared by
    # all nodes, written once so a node formatted later joins the same quorum.
    local initial=""
    if [[ $NODES == 3 ]]; then
        mkdir -p "$RUN"
        [[ -f "$RUN/cluster-id" ]] || java_tool kafka.tools.StorageTool random-uuid >"$RUN/cluster-id"
        if [[ ! -f "$RUN/initial-controllers" ]]; then
            local list="" i
            for i in 1 2 3; do
                list+="${list:+,}$i@$HOST:$(controller_port "$i"):$(java_tool kafka.tools.StorageTool random-uuid)"
            done
            echo "$list" >"$RUN/initial-controllers"
        fi
        initial="$(cat "$RUN/initial-controllers")"
    fi

    for node in "${nodes[@]}"; do
        [[ -n "$(node_pid "$node")" ]] && continue # a node of a half-up cluster
        check_ports_free "$node"
        [[ $node == secure ]] && secure_files
        write_props "$node"
        format_storage "$node" "$initial"
        launch "$node"
        started=1
    done
    ((started)) || say "all nodes were running; waiting for them to answer"

    wait_ready "${nodes[@]}"
    echo "$what up on $(bootstrap_of "$NODES") (ready after $((SECONDS - t0)) s)"
}

cmd_down() {
    parse_nodes "$@"
    local nodes node
    read -ra nodes <<<"$(nodes_for "$NODES")"
    stop_nodes "${nodes[@]}"
    if ((WIPE)); then
        for node in "${nodes[@]}"; do rm -rf "$(node_dir "$node")"; done
        [[ $NODES == 3 ]] && rm -f "$RUN/cluster-id" "$RUN/initial-controllers"
        echo "Kafka ($NODES node(s)) down, data wiped"
    else
        echo "Kafka ($NODES node(s)) down (data kept in $RUN)"
    fi
}

cmd_restart() {
    cmd_down --nodes 1 >/dev/null
    cmd_up --nodes 1
}

cmd_kill() { # kill -9 one node: the fault suite's "broker crashed"
    [[ $# -eq 1 ]] || die "usage: kafka.sh kill <node-id>|single"
    check_node "$1"
    local pid
    pid="$(node_pid "$1")"
    [[ -n "$pid" ]] || die "node $1 is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$(node_dir "$1")/pid"
    echo "node $1 (pid $pid) killed with SIGKILL"
}

cmd_start() { # start one stopped node again on its existing storage
    [[ $# -eq 1 ]] || die "usage: kafka.sh start <node-id>|single"
    local node=$1 t0=$SECONDS
    check_node "$node"
    ensure_libs
    if [[ -n "$(node_pid "$node")" ]]; then
        echo "node $node already running (pid $(node_pid "$node"))"
        return 0
    fi
    [[ -f "$(node_dir "$node")/data/meta.properties" ]] ||
        die "node $node has no storage; use 'kafka.sh up$([[ $node == single ]] || echo ' --nodes 3')' first"
    check_ports_free "$node"
    write_props "$node"
    launch "$node"
    wait_ready "$node"
    echo "node $node up on $HOST:$(client_port "$node") (ready after $((SECONDS - t0)) s)"
}

cmd_status() {
    local node pid state rc=1
    for node in single secure 1 2 3; do
        [[ -d "$(node_dir "$node")" ]] || continue
        pid="$(node_pid "$node")"
        if [[ -z "$pid" ]]; then
            state="stopped"
        elif port_open "$(client_port "$node")"; then
            state="running (pid $pid), listening"
            rc=0
        else
            state="running (pid $pid), not listening yet"
        fi
        printf '%-7s %-16s %s\n' "$node" "$HOST:$(client_port "$node")" "$state"
    done
    [[ -d "$RUN" ]] || echo "no Kafka node has been started from this checkout ($RUN)"
    return $rc # 0 if at least one node answers
}

cmd_logs() {
    parse_nodes "$@"
    local nodes node files=()
    read -ra nodes <<<"$(nodes_for "$NODES")"
    for node in "${nodes[@]}"; do
        [[ -f "$(node_dir "$node")/server.log" ]] && files+=("$(node_dir "$node")/server.log")
    done
    [[ ${#files[@]} -gt 0 ]] || die "no log yet under $RUN"
    if ((FOLLOW)); then exec tail -n "$LINES" -F "${files[@]}"; fi
    tail -n "$LINES" "${files[@]}"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        fetch) cmd_fetch ;;
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        restart) cmd_restart ;;
        kill) cmd_kill "$@" ;;
        start) cmd_start "$@" ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        tool) cmd_tool "$@" ;;
        -h | --help | help | "") sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
        *) die "unknown command '$cmd' (try --help)" ;;
    esac
}

main "$@"
