# syntax=docker/dockerfile:1
# The raftlet image: Node 24 running the compiled dist/ as an unprivileged user, and nothing else.
#
# Three stages. `build` installs every dependency, compiles the TypeScript and prunes node_modules
# to the runtime packages. `runtime` collects, from the same base, only what Node needs to run: the
# node binary, the shared libraries it links (found with ldd), /usr/bin/env for the `raftlet`
# command's #! line, passwd/group entries, /tmp and the data directory. The final stage starts from
# scratch with that runtime and raftlet's package.json, bin/, dist/ and pruned node_modules: no
# shell, no package manager, no Debian userland (docs/shipping.md has the sizes).
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
 && rm -rf node_modules/.cache node_modules/.package-lock.json
COPY bin ./bin

FROM ${BASE_IMAGE} AS runtime
# /runtime becomes the final image's root. Libraries keep their paths (ld.so looks there), so the
# binary runs unchanged; --dereference copies the files the library symlinks point to.
RUN set -eu; \
    mkdir -p /runtime/usr/local/bin /runtime/usr/bin /runtime/etc /runtime/tmp /runtime/var/lib/raftlet; \
    cp /usr/local/bin/node /runtime/usr/local/bin/node; \
    cp /usr/bin/env /runtime/usr/bin/env; \
    for file in $(ldd /usr/local/bin/node /usr/bin/env | awk '$2 == "=>" && $3 ~ /^\// { print $3 } NF == 2 && $1 ~ /^\// { print $1 }' | sort -u); do \
      cp --parents --dereference "$file" /runtime; \
    done; \
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nraftlet:x:65532:65532:raftlet:/var/lib/raftlet:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > /runtime/etc/passwd; \
    printf 'root:x:0:\nraftlet:x:65532:\nnogroup:x:65534:\n' > /runtime/etc/group; \
    chmod 1777 /runtime/tmp; \
    chown 65532:65532 /runtime/var/lib/raftlet; \
    chmod 0750 /runtime/var/lib/raftlet; \
    ln -s /app/bin/raftlet.js /runtime/usr/local/bin/raftlet; \
    chroot /runtime /usr/local/bin/node --version

FROM scratch
COPY --from=runtime /runtime/ /
ENV PATH=/usr/local/bin:/usr/bin \
    NODE_ENV=production \
    RAFTLET_DATA_DIR=/var/lib/raftlet
WORKDIR /app
# Owned by root and read-only to raftlet: the process can write only its data directory.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
VOLUME ["/var/lib/raftlet"]
# 7070 peer RPC, 9102 metrics and probes (the client API 7071 listens on 127.0.0.1 only).
EXPOSE 7070 9102
USER 65532:65532
# Exec form, no shell: node is PID 1 and receives SIGTERM itself (raftlet hands leadership over).
# bin/raftlet.js re-executes `run` once in place (process.execve, same pid) with V8 heap flags sized
# from the container's memory limit.
ENTRYPOINT ["node", "/app/bin/raftlet.js"]
CMD ["run"]
