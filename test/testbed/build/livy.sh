#!/usr/bin/env bash
# Builds Apache Livy and the Spark it runs on from package registries, cached by version:
#   spark  python venv spark-venv-$SPARK_VERSION: pyspark (its package dir is SPARK_HOME) + the PyPI livy client
#   livy   LIVY_HOME livy-$LIVY_VERSION laid out from Apache's binary release (found by find-livy.sh)
#   clients  python venv livy-clients-$SPARKMAGIC_VERSION: sparkmagic and jupyter's nbconvert, the plain Livy
#            clients the gateway is tested with (sparkmagic's Kerberos dependency compiles against Debian's
#            libkrb5-dev, which scripts/system-deps.sh installs)
# Usage: livy.sh [spark|livy|clients]...   (no argument: all). Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${LIVY_TESTBED_CACHE:-$HOME/.cache/livy-operator-testbed}
mkdir -p "$CACHE"

log() { printf '[testbed-build] %s\n' "$*" >&2; }
fail() { printf '[testbed-build] FAILED: %s\n' "$*" >&2; exit 1; }

build_spark() {
  local started=$SECONDS
  local out="$CACHE/spark-venv-$SPARK_VERSION"
  [ -f "$out/.complete" ] && { log "spark $SPARK_VERSION cached at $out"; return; }
  command -v python3 >/dev/null || fail "spark: python3 is not installed (pyspark $SPARK_VERSION needs Python 3.8-3.11)"
  command -v java >/dev/null || fail "spark: java is not installed (Spark 3.5 needs Java 8, 11 or 17)"
  log "installing pyspark==$SPARK_VERSION and livy==$PYLIVY_VERSION into $out (cold: 1-5 min, ~320 MB download)"
  rm -rf "$out"
  python3 -m venv "$out" || fail "spark: python3 -m venv failed"
  "$out/bin/pip" install --quiet --no-cache-dir "pyspark==$SPARK_VERSION" "livy==$PYLIVY_VERSION" \
    || fail "spark: pip install pyspark==$SPARK_VERSION livy==$PYLIVY_VERSION failed (see above)"
  local home; home=$("$out/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  ln -sfn "$home" "$out/spark-home"
  chmod +x "$home"/bin/* 2>/dev/null || true
  "$home/bin/spark-submit" --version 2>&1 | grep -q "version $SPARK_VERSION" \
    || fail "spark: $home/bin/spark-submit --version does not report $SPARK_VERSION"
  # a real job in local mode: proves java, py4j and the python workers fit together
  local n; n=$(SPARK_HOME="$home" SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$out/bin/python" "$out/bin/python" -c '
from pyspark.sql import SparkSession
s = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
s.sparkContext.setLogLevel("ERROR")
print(s.sparkContext.parallelize(range(100)).map(lambda x: x * 2).count())
s.stop()' 2>"$out/verify.log" | tail -1) || true
  [ "$n" = 100 ] || fail "spark: a local pyspark job did not run (see $out/verify.log)"
  "$out/bin/python" -c "import livy, livy.session" || fail "spark: the PyPI livy client does not import"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "spark $SPARK_VERSION installed into $out (SPARK_HOME=$out/spark-home)"
}

build_clients() {
  local started=$SECONDS
  local out="$CACHE/livy-clients-$SPARKMAGIC_VERSION"
  [ -f "$out/.complete" ] && { log "clients (sparkmagic $SPARKMAGIC_VERSION) cached at $out"; return; }
  command -v krb5-config >/dev/null || fail "clients: krb5-config is missing: sparkmagic's gssapi and krb5 dependencies build against Debian's libkrb5-dev (scripts/system-deps.sh installs it)"
  command -v gcc >/dev/null || fail "clients: gcc is missing: sparkmagic's gssapi and krb5 dependencies are compiled (scripts/system-deps.sh installs it)"
  python3 -c 'import os, sysconfig; exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || fail "clients: python3 has no C headers (Python.h): install its development package (Debian: python3-dev)"
  log "installing sparkmagic==$SPARKMAGIC_VERSION and nbconvert into $out (cold: 3-8 min, compiles gssapi and krb5)"
  rm -rf "$out"
  python3 -m venv "$out" || fail "clients: python3 -m venv failed"
  "$out/bin/pip" install --quiet --no-cache-dir "sparkmagic==$SPARKMAGIC_VERSION" nbconvert \
    || fail "clients: pip install sparkmagic==$SPARKMAGIC_VERSION nbconvert failed (see above)"
  "$out/bin/python" -c "import sparkmagic.magics" || fail "clients: sparkmagic.magics does not import"
  "$out/bin/jupyter" nbconvert --version >/dev/null || fail "clients: jupyter nbconvert does not run"
  "$out/bin/pip" freeze > "$out/pip-freeze.txt"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "clients installed into $out"
}

# Livy 0.8 and 0.9 are in no package registry: Maven Central stops at 0.7.1-incubating for livy-server,
# livy-rsc and livy-api and never published livy-repl_* or livy-assembly, so no pom can lay out a 0.9
# LIVY_HOME. The test bed therefore takes Apache's binary release, found by find-livy.sh: LIVY_DISTRIBUTION
# (a zip or an unpacked LIVY_HOME), else the project's verified mirror in shared/livy/ above the repository,
# else the verified copy of it in the cache. Without one, real Livy is unavailable and the test run says so
# (LIVY_TESTBED_SKIP_LIVY=1 opts out).
build_livy() {
  local out="$CACHE/livy-$LIVY_VERSION"
  [ -f "$out/.complete" ] && { log "livy $LIVY_VERSION cached at $out"; return; }
  local dist; dist=$(bash "$here/find-livy.sh") || dist=""
  [ -n "$dist" ] || fail "livy: Apache Livy $LIVY_VERSION is not served by any package registry (Maven Central stops at 0.7.1-incubating and has no livy-repl), and no verified shared/livy/apache-livy-${LIVY_VERSION}_2.12-bin.zip was found above the repository or in the cache; set LIVY_DISTRIBUTION to that zip or its unpacked directory, or LIVY_TESTBED_SKIP_LIVY=1 to test without real Livy"
  log "livy: laying out $dist"
  command -v java >/dev/null || fail "livy: java is not installed (Livy 0.9 runs on Java 17)"
  rm -rf "$out"; mkdir -p "$out"
  if [ -f "$dist" ]; then
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && jar xf "$dist") || fail "livy: cannot unpack $dist"
    local top; top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -1)
    cp -r "${top:-$tmp}/." "$out/"; rm -rf "$tmp"
  elif [ -d "$dist" ]; then
    cp -r "$dist/." "$out/"
  else
    fail "livy: $dist is neither a zip nor a directory"
  fi
  chmod +x "$out"/bin/* 2>/dev/null || true
  # Livy's assembly puts kryo-shaded, minlog and objenesis in both rsc-jars/ and repl_2.12-jars/; a session
  # passes both sets in spark.jars and Spark 3.5 refuses the second copy of each name with a logged
  # IllegalArgumentException ("File kryo-shaded-4.0.2.jar was already registered with a different path")
  # that also fills the session's log. Keep one copy (rsc-jars/ is added first).
  local j
  for j in "$out"/repl_2.12-jars/*.jar; do
    if [ -f "$out/rsc-jars/$(basename "$j")" ]; then rm -f "$j"; fi
  done
  verify_livy_layout "$out"
  ( flock 8; build_spark ) 8>"$CACHE/.lock-spark"  # the server checks its Spark at start-up
  verify_livy_server "$out" "$CACHE/src/livy-verify"
  touch "$out/.complete"; log "livy $LIVY_VERSION laid out in $out"
}

verify_livy_layout() {
  local out=$1 d
  for d in jars rsc-jars repl_2.12-jars conf; do
    [ -d "$out/$d" ] && [ -n "$(ls -A "$out/$d")" ] || fail "livy: $out/$d is missing or empty"
  done
  ls "$out/jars/livy-server-$LIVY_VERSION.jar" "$out/rsc-jars/livy-rsc-$LIVY_VERSION.jar" \
    "$out/repl_2.12-jars/livy-repl_2.12-$LIVY_VERSION.jar" >/dev/null 2>&1 || fail "livy: a Livy jar is missing in $out"
  local bad; bad=$(cd "$out" && ls jars rsc-jars repl_2.12-jars | grep -E '_2\.1[13]' | grep -v '_2\.12' || true)
  [ -z "$bad" ] || fail "livy: jars for another Scala than 2.12 slipped in: $bad"
}

# Starts the server once on a free loopback port: it must run `spark-submit --version` against the pyspark
# SPARK_HOME, accept Spark 3.5 / Scala 2.12 and answer GET /version with this version.
verify_livy_server() {
  local home=$1 dir=$2 venv="$CACHE/spark-venv-$SPARK_VERSION"
  rm -rf "$dir"; mkdir -p "$dir/conf" "$dir/logs"
  local port; port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'livy.server.host = 127.0.0.1\nlivy.server.port = %s\nlivy.spark.master = local[1]\n' "$port" >"$dir/conf/livy.conf"
  cp "$home/conf/log4j.properties.template" "$dir/conf/log4j.properties"
  local opens="-XX:+IgnoreUnrecognizedVMOptions --add-opens=java.base/java.lang.invoke=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/sun.util.calendar=ALL-UNNAMED"
  # shellcheck disable=SC2086
  LIVY_HOME="$home" LIVY_CONF_DIR="$dir/conf" LIVY_LOG_DIR="$dir/logs" SPARK_HOME="$venv/spark-home" \
    java -Xmx256m $opens -cp "$home/jars/*:$dir/conf" org.apache.livy.server.LivyServer >"$dir/server.log" 2>&1 &
  local pid=$! answer="" i
  for i in $(seq 1 120); do
    answer=$(curl -fsS "http://127.0.0.1:$port/version" 2>/dev/null) && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  case "$answer" in
    *"\"version\":\"$LIVY_VERSION\""*) log "livy server answered GET /version: $answer" ;;
    *) tail -30 "$dir/server.log" >&2; fail "livy: the server did not answer GET /version with $LIVY_VERSION (log: $dir/server.log)" ;;
  esac
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(spark livy clients)
for t in "${targets[@]}"; do
  # one builder per component at a time, machine-wide (build_livy also builds spark: it takes that lock too)
  ( flock 9; "build_$t" ) 9>"$CACHE/.lock-$t"
done
