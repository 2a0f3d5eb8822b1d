#!/usr/bin/env bash
# Start, stop or check the real services fastmon's tests use: PostgreSQL, Redis, ActiveMQ (STOMP on
# 127.0.0.1:61613), and the remote-read servers over one data directory (FASTMON_REMOTE_DATA_DIR,
# default /var/lib/fastmon-data): XRootD (root://169.254.94.2:1094, in a network namespace of its
# own reached over a veth pair from this machine only: xrootd cannot bind to loopback alone) and
# nginx with byte ranges (http://127.0.0.1:8088). Idempotent: safe to run twice and when running.
#   scripts/services.sh up|down|status
# Everything listens on 127.0.0.1 only. ActiveMQ requires the login fastmon/fastmon. Settings:
#   FASTMON_DB_NAME=fastmon FASTMON_DB_USER=fastmon FASTMON_DB_PASSWORD=fastmon
#   FASTMON_SERVICES_TIMEOUT=90 (seconds to wait for each service to be ready)
set -euo pipefail

DB_NAME=${FASTMON_DB_NAME:-fastmon}
DB_USER=${FASTMON_DB_USER:-fastmon}
DB_PASSWORD=${FASTMON_DB_PASSWORD:-fastmon}
TIMEOUT=${FASTMON_SERVICES_TIMEOUT:-90}
REDIS_PORT=6379
STOMP_PORT=61613
AMQ_BASE=/var/lib/fastmon-activemq
REDIS_DIR=/var/lib/fastmon-redis
DATA_DIR=${FASTMON_REMOTE_DATA_DIR:-/var/lib/fastmon-data}
XRD_BASE=/var/lib/fastmon-xrootd
XRD_NS=fastmon-xrootd
XRD_HOST=169.254.94.2
XRD_PORT=1094
HTTP_BASE=/var/lib/fastmon-http
HTTP_PORT=8088

say() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
as_root() { $SUDO "$@"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for NAME LOGFILE CHECK-COMMAND...
  local name=$1 log=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      [ -f "$log" ] && tail -n 20 "$log" >&2
      die "$name did not become ready within ${TIMEOUT}s (log: $log)"
    fi
    sleep 1
  done
  say "$name ready"
}

install_missing() {
  local missing=()
  command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -f /usr/share/activemq/bin/activemq.jar ] || missing+=(activemq)
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v xrootd >/dev/null || missing+=(xrootd-server)
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v ip >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt"
  as_root apt-get update -qq
  # Debian's postinst scripts may try to start services; the policy below keeps them down.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { as_root rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
  as_root rm -f /usr/sbin/policy-rc.d
}

# --- PostgreSQL -------------------------------------------------------------
pg_cluster() { pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}'; }

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

postgres_up() {
  if [ -z "$(pg_cluster)" ]; then
    local version; version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    say "creating PostgreSQL $version cluster"
    as_root pg_createcluster "$version" main >/dev/null
  fi
  read -r version cluster <<<"$(pg_cluster)"
  if ! pg_ready; then
    say "starting PostgreSQL $version/$cluster"
    as_root pg_ctlcluster "$version" "$cluster" start || die "PostgreSQL $version/$cluster failed to start"
  fi
  wait_for PostgreSQL "/var/log/postgresql/postgresql-$version-$cluster.log" pg_ready
  as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE "$DB_USER" LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;
SQL
  if ! as_root runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1; then
    as_root runuser -u postgres -- createdb -O "$DB_USER" "$DB_NAME"
  fi
}

postgres_down() {
  local version cluster
  read -r version cluster <<<"$(pg_cluster)"
  [ -n "${version:-}" ] && pg_ready && as_root pg_ctlcluster "$version" "$cluster" stop || true
}

# --- Redis ------------------------------------------------------------------
redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping 2>/dev/null)" = PONG ]; }

redis_up() {
  if ! redis_ready; then
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    as_root mkdir -p "$REDIS_DIR"
    as_root redis-server --bind 127.0.0.1 --port $REDIS_PORT --daemonize yes --save '' \
      --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" \
      || die "Redis failed to start (log: $REDIS_DIR/redis.log)"
  fi
  wait_for Redis "$REDIS_DIR/redis.log" redis_ready
}

redis_down() { redis_ready && redis-cli -h 127.0.0.1 -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; }

# --- ActiveMQ ---------------------------------------------------------------
amq_ready() { port_open $STOMP_PORT; }

amq_write_config() {
  as_root mkdir -p "$AMQ_BASE/conf" "$AMQ_BASE/data" "$AMQ_BASE/tmp"
  as_root tee "$AMQ_BASE/conf/activemq.xml" >/dev/null <<'XML'
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="fastmon"
          dataDirectory="${activemq.data}" schedulerSupport="false">
    <!-- Every topic is also a virtual topic: run_fastmon processes reading
         /queue/Consumer.<group>.<topic> share that topic's messages as competing consumers.
         The workers' results queue keeps its messages for its one reader (the fast-processing
         agent) and forwards a copy to a topic fastmon reads (forwardOnly="false"). -->
    <destinationInterceptors>
      <virtualDestinationInterceptor>
        <virtualDestinations>
          <virtualTopic name=">" prefix="Consumer.*." selectorAware="false"/>
          <compositeQueue name="panda.results.fastprocessing" forwardOnly="false">
            <forwardTo>
              <topic physicalName="fastmon.copy.panda.results.fastprocessing"/>
            </forwardTo>
          </compositeQueue>
        </virtualDestinations>
      </virtualDestinationInterceptor>
    </destinationInterceptors>
    <persistenceAdapter><kahaDB directory="${activemq.data}/kahadb"/></persistenceAdapter>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username="fastmon" password="fastmon" groups="users,admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:61613?transport.closeAsync=false"/>
    </transportConnectors>
  </broker>
</beans>
XML
  as_root chown -R activemq "$AMQ_BASE"
}

amq_up() {
  if ! amq_ready; then
    say "starting ActiveMQ (STOMP on 127.0.0.1:$STOMP_PORT, base $AMQ_BASE)"
    amq_write_config
    # Fully detached (own session, no inherited stdout): a caller reading our output to its
    # end must not wait for the broker to exit.
    (cd "$AMQ_BASE" && exec $SUDO setsid runuser -u activemq -- java -Xms128M -Xmx512M \
      -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$AMQ_BASE" \
      -Dactivemq.conf="$AMQ_BASE/conf" -Dactivemq.data="$AMQ_BASE/data" \
      -Djava.io.tmpdir="$AMQ_BASE/tmp" \
      -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$AMQ_BASE/conf/activemq.xml" \
    ) >"$AMQ_BASE/broker.log" 2>&1 </dev/null &
  fi
  wait_for "ActiveMQ STOMP" "$AMQ_BASE/broker.log" amq_ready
}

amq_down() { pkill -u activemq -f "activemq.base=$AMQ_BASE" 2>/dev/null || true; }

amq_restart() {  # what a broker restart does to the clients: the tests' and benchmarks' fault
  amq_down
  for _ in $(seq 300); do pgrep -u activemq -f "activemq.base=$AMQ_BASE" >/dev/null || break; sleep 0.1; done
  amq_up
}

# --- the data directory the remote-read servers share -----------------------
data_dir() { as_root mkdir -p "$DATA_DIR" && as_root chmod 1777 "$DATA_DIR"; }

# --- XRootD -------------------------------------------------------------------
# Listening inside its namespace (a connect test from here could be answered by this sandbox's
# network on the server's behalf).
xrd_ready() { as_root ip netns exec $XRD_NS ss -ltn 2>/dev/null | grep -q ":$XRD_PORT "; }

xrd_network() {
  ip netns list 2>/dev/null | grep -q "^$XRD_NS\b" && return 0
  as_root ip netns add $XRD_NS
  as_root ip link add fmxrd0 type veth peer name fmxrd1
  as_root ip link set fmxrd1 netns $XRD_NS
  as_root ip addr add 169.254.94.1/30 dev fmxrd0
  as_root ip link set fmxrd0 up
  as_root ip netns exec $XRD_NS ip addr add $XRD_HOST/30 dev fmxrd1
  as_root ip netns exec $XRD_NS ip link set fmxrd1 up
  as_root ip netns exec $XRD_NS ip link set lo up
}

xrd_up() {
  if ! xrd_ready; then
    say "starting XRootD (root://$XRD_HOST:$XRD_PORT, serving $DATA_DIR)"
    data_dir
    as_root mkdir -p "$XRD_BASE"
    as_root tee "$XRD_BASE/xrootd.cfg" >/dev/null <<CFG
all.export /
xrd.port $XRD_PORT
oss.localroot $DATA_DIR
all.adminpath $XRD_BASE
all.pidpath $XRD_BASE
xrd.network nodnr
# Every read, with its offset and length: the tests check only sampled ranges are read.
ofs.trace -all
xrootd.trace fsio
CFG
    as_root chown -R xrootd "$XRD_BASE"
    xrd_network
    as_root ip netns exec $XRD_NS runuser -u xrootd -- \
      xrootd -c "$XRD_BASE/xrootd.cfg" -l "$XRD_BASE/xrootd.log" -b -n fastmon >/dev/null
  fi
  wait_for XRootD "$XRD_BASE/fastmon/xrootd.log" xrd_ready
}

xrd_down() {
  pkill -u xrootd -f "$XRD_BASE/xrootd.cfg" 2>/dev/null || true
  as_root ip netns del $XRD_NS 2>/dev/null || true
}

# --- nginx (HTTP with byte ranges) ---------------------------------------------
http_ready() { port_open $HTTP_PORT; }

http_up() {
  if ! http_ready; then
    say "starting nginx (http://127.0.0.1:$HTTP_PORT, serving $DATA_DIR)"
    data_dir
    as_root mkdir -p "$HTTP_BASE/logs"
    as_root tee "$HTTP_BASE/nginx.conf" >/dev/null <<CONF
worker_processes 2;
pid $HTTP_BASE/nginx.pid;
error_log $HTTP_BASE/logs/error.log;
events {}
http {
  # Every request with the ranges it asked for: the tests check only sampled ranges are read.
  log_format ranges '\$request_method \$uri \$status range=\$http_range sent=\$bytes_sent';
  access_log $HTTP_BASE/logs/access.log ranges;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    root $DATA_DIR;
  }
}
CONF
    as_root nginx -c "$HTTP_BASE/nginx.conf" -p "$HTTP_BASE"
  fi
  wait_for nginx "$HTTP_BASE/logs/error.log" http_ready
}

http_down() { [ -f "$HTTP_BASE/nginx.pid" ] && as_root nginx -c "$HTTP_BASE/nginx.conf" -p "$HTTP_BASE" -s quit 2>/dev/null || true; }

status() {
  local rc=0
  pg_ready && say "PostgreSQL: up (127.0.0.1:5432)" || { say "PostgreSQL: down"; rc=1; }
  redis_ready && say "Redis: up (127.0.0.1:$REDIS_PORT)" || { say "Redis: down"; rc=1; }
  amq_ready && say "ActiveMQ STOMP: up (127.0.0.1:$STOMP_PORT)" || { say "ActiveMQ STOMP: down"; rc=1; }
  xrd_ready && say "XRootD: up ($XRD_HOST:$XRD_PORT)" || { say "XRootD: down"; rc=1; }
  http_ready && say "nginx: up (127.0.0.1:$HTTP_PORT)" || { say "nginx: down"; rc=1; }
  return $rc
}

case "${1:-}" in
  up) install_missing; postgres_up; redis_up; amq_up; xrd_up; http_up ;;
  restart-broker) amq_restart ;;
  restart-db) read -r version cluster <<<"$(pg_cluster)"; as_root pg_ctlcluster "$version" "$cluster" restart -m fast; wait_for PostgreSQL "/var/log/postgresql/postgresql-$version-$cluster.log" pg_ready ;;
  down) http_down; xrd_down; amq_down; redis_down; postgres_down; say "stopped" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|restart-broker|restart-db" >&2; exit 2 ;;
esac
