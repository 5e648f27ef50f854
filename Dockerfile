# syntax=docker/dockerfile:1
# The raftlet image: Node 24 running the compiled dist/ as an unprivileged user.
#
# Two stages on the same base. `build` installs every dependency, compiles the TypeScript and then
# prunes node_modules to the runtime packages; the final stage receives only package.json, bin/,
# dist/ and that pruned node_modules (no sources, tests, TypeScript or npm cache).
#
# BASE_IMAGE must have Node 24 at /usr/local/bin/node and, for the build stage, npm: the official
# node image does. Machines that reach no image registry build a local stand-in with the Node 24
# binary this project installs from the npm registry (tools/image/build.sh, docs/shipping.md).
ARG BASE_IMAGE=docker.io/library/node:24-bookworm-slim

FROM ${BASE_IMAGE} AS build
# Behind a TLS-intercepting proxy: a CA bundle path inside BASE_IMAGE (empty = Node's own CAs).
ARG NODE_EXTRA_CA_CERTS=
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org/
ENV npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script to run raftlet, and the `node` dev
# dependency's script would only download a second Node binary the build does not use.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Then keep only the runtime packages, without their type declarations and source maps (a third of
# @kubernetes/client-node's size; nothing reads them at run time).
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && rm -rf node_modules/.cache
COPY bin ./bin

FROM ${BASE_IMAGE}
# npm, npx, corepack and yarn are build tools; the running image has no use for them.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && groupadd --system --gid 65532 raftlet \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/raftlet --no-create-home \
      --shell /usr/sbin/nologin raftlet \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/raftlet
ENV NODE_ENV=production \
    RAFTLET_DATA_DIR=/var/lib/raftlet
WORKDIR /app
# Owned by root and read-only to raftlet: the process can write only its data directory.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
RUN ln -s /app/bin/raftlet.js /usr/local/bin/raftlet
VOLUME ["/var/lib/raftlet"]
# 7070 peer RPC, 9102 metrics and probes (the client API 7071 listens on 127.0.0.1 only).
EXPOSE 7070 9102
USER 65532:65532
# Exec form, no shell: node is PID 1 and receives SIGTERM itself (raftlet hands leadership over).
ENTRYPOINT ["node", "/app/bin/raftlet.js"]
CMD ["run"]
