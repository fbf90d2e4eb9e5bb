# Sourced by `make test` and `make demo`. Real Apache Livy 0.9 is in no package registry (Maven Central
# stops at 0.7.1-incubating and never published livy-repl), so the test bed can only use Apache's binary
# release when the machine has it: LIVY_DISTRIBUTION=<apache-livy-0.9.0-incubating_2.12-bin.zip or its
# directory>, or a layout already cached by an earlier run. Without one, this opts out of real Livy
# explicitly (LIVY_TESTBED_SKIP_LIVY=1) and says so loudly; the real-Livy suites then report NOT RUN.
_lo_v=$(sed -n 's/^LIVY_VERSION=//p' test/testbed/build/versions.env)
_lo_cache=${LIVY_TESTBED_CACHE:-$HOME/.cache/livy-operator-testbed}
if [ "${LIVY_TESTBED_SKIP_LIVY:-}" != "1" ] && [ -z "${LIVY_DISTRIBUTION:-}" ] && [ ! -f "$_lo_cache/livy-$_lo_v/.complete" ]; then
  export LIVY_TESTBED_SKIP_LIVY=1
  export LIVY_TESTBED_SKIP_REASON="no Apache Livy $_lo_v distribution on this machine (Livy 0.8+ is in no package registry); set LIVY_DISTRIBUTION to apache-livy-${_lo_v}_2.12-bin.zip to run them"
  {
    echo "================================================================================================"
    echo " REAL LIVY: NOT AVAILABLE. The contract tests against real Livy, the end-to-end test on real Spark"
    echo " and the real-Livy benchmarks will NOT RUN (reported as skipped, never as passed)."
    echo " Reason: $LIVY_TESTBED_SKIP_REASON"
    echo "================================================================================================"
  } >&2
fi
unset _lo_v _lo_cache
