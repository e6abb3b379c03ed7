# harbor-lb container image: `docker build -t harbor-lb .` from a clone.
#
# The base image is a build argument so the image can be built where Docker Hub is out of reach:
# any image with Node.js 24 or later (node and npm on PATH) and a `node` user will do, e.g.
#   docker build --build-arg NODE_IMAGE=registry.example.com/library/node:24-bookworm-slim .
# The end-to-end test builds it on a base made from the test machine's own Node.js.
ARG NODE_IMAGE=node:24-bookworm-slim

# Build stage: installs every dependency from the lockfile (this needs the npm registry, as any
# `npm ci` does), compiles TypeScript, then drops the dev dependencies. The build context holds
# the sources only (.dockerignore), so a clone needs no npm install or build before `docker build`.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (tsc) would run before the sources are copied;
# no dependency needs an install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p . && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and run as `node`: the process cannot rewrite its own code.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
USER node
EXPOSE 8070 9070
# Liveness of the process through the admin API, with Node itself (slim images have no curl).
# Point it elsewhere when admin.address/admin.port differ from 127.0.0.1:9070 (or 0.0.0.0:9070).
ENV HARBOR_LB_HEALTHCHECK_URL=http://127.0.0.1:9070/-/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('node:http').get(process.env.HARBOR_LB_HEALTHCHECK_URL, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).setTimeout(4000, () => process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself (drain, then exit 0); its only child processes are
# its own request workers, which it reaps, so no init (tini, --init) is needed.
# Two malloc arenas rather than one per allocating thread: each worker peaked about 12 MiB lower
# under load, for no measurable CPU (docs/operations.md). Request workers get it anyway.
ENV MALLOC_ARENA_MAX=2
# A young generation of at most 16 MiB per semi-space: V8's default on Node 24 lets it grow to
# 64 MiB under load, about 140 MiB of peak memory more for no measurable CPU (docs/operations.md).
ENTRYPOINT ["node", "--max-semi-space-size=16", "dist/src/cli.js"]
CMD ["serve", "--config", "/etc/harbor-lb/harbor-lb.yaml"]
