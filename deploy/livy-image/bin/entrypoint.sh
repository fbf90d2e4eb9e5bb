#!/bin/bash
# The image's entrypoint, on the contract of the entrypoint of Apache Spark's own Kubernetes images, so that
# this image serves as the executor image of its own sessions (spec.spark.mode: kubernetes), and any image
# keeping that contract can replace it there:
#   executor   a Spark executor, configured by the environment Spark's driver gives its executor pods
#              (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, SPARK_EXECUTOR_CORES, SPARK_EXECUTOR_MEMORY,
#              SPARK_APPLICATION_ID, SPARK_EXECUTOR_POD_IP, SPARK_EXECUTOR_POD_NAME,
#              SPARK_RESOURCE_PROFILE_ID, SPARK_JAVA_OPT_<n>, SPARK_CONF_DIR, ...);
#   driver     a Spark driver in cluster mode (spark-submit with the bind address Spark gives the pod);
#   anything else runs as given: the default command, the Livy server.
# Always under tini, which reaps what Livy and Spark start. Unlike Spark's own entrypoint it writes no file
# (the pods run with a read-only root filesystem) and takes java from JAVA_HOME when set, else from PATH.
set -euo pipefail

classpath() {
  local cp="${SPARK_CONF_DIR:-$SPARK_HOME/conf}"
  if [ -n "${HADOOP_CONF_DIR:-}" ]; then cp="$cp:$HADOOP_CONF_DIR"; fi
  cp="$cp:${SPARK_CLASSPATH:-}:$SPARK_HOME/jars/*"
  if [ -n "${SPARK_EXTRA_CLASSPATH:-}" ]; then cp="$cp:$SPARK_EXTRA_CLASSPATH"; fi
  if [ -n "${SPARK_DIST_CLASSPATH:-}" ]; then cp="$cp:$SPARK_DIST_CLASSPATH"; fi
  printf '%s' "$cp"
}

case "${1:-}" in
  executor)
    shift
    # SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...: one JVM option each, in their numeric order
    opts=()
    while IFS= read -r name; do
      opts+=("${!name}")
    done < <(compgen -e | grep -E '^SPARK_JAVA_OPT_[0-9]+$' | sort -t_ -k4 -n || true)
    set -- "${JAVA_HOME:+$JAVA_HOME/bin/}java" "${opts[@]}" \
      "-Xms$SPARK_EXECUTOR_MEMORY" "-Xmx$SPARK_EXECUTOR_MEMORY" -cp "$(classpath)" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME" "$@"
    ;;
  driver)
    shift
    set -- "$SPARK_HOME/bin/spark-submit" --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
esac
exec /usr/bin/tini -s -- "$@"
