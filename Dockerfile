# syntax=docker/dockerfile:1
# The livy-operator image: `docker build -t ghcr.io/livy-operator/livy-operator:0.1.0 .`
# Three stages: build (all dependencies, tsc to dist/), deps (production dependencies only), and a small
# final image with dist/ and those dependencies, running as a non-root user.
# test/integration/image-build.test.ts replays these steps without Docker, following the COPY and RUN
# lines below: keep to COPY, RUN npm ci / npm install / npm run / find node_modules, WORKDIR, ENV, USER,
# EXPOSE and ENTRYPOINT (other RUN commands are not replayed).
# The build stage is glibc: TypeScript 7's compiler ships as a native binary per platform, and the lock
# carries the glibc one. The run time is plain JavaScript, so the final image stays on alpine.
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG NODE_IMAGE=node:24-alpine

FROM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency of the operator has an install script: --ignore-scripts keeps it that way. Type
# declarations, source maps and docs are half the size of node_modules and never loaded at run time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force \
    && find node_modules -type f \( -name "*.d.ts" -o -name "*.d.mts" -o -name "*.d.cts" -o -name "*.map" \
         -o -name "*.md" \) -delete

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="livy-operator" \
      org.opencontainers.image.description="Kubernetes operator for interactive Apache Livy sessions" \
      org.opencontainers.image.source="https://github.com/livy-operator/livy-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# npm and yarn are not needed at run time: less to ship, less to patch
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn* \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# numeric, so that Kubernetes can verify runAsNonRoot; the chart runs it with the same ids
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "dist/operator/main.js"]
