# Moat container image: multi-stage, Debian 12 like the development machines.
#   docker build -t moat .
#   docker run -v $PWD/deploy/demo-config:/etc/moat moat        (expects /etc/moat/moat.yaml)
# Deployed as a sidecar next to the broker (see deploy/compose/, deploy/kubernetes/). Runs
# read-only-root, without capabilities: the manifests there enforce it (README "Deployment
# hardening").
FROM debian:12 AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        build-essential cmake ninja-build pkg-config \
        libuv1-dev libssl-dev libyaml-cpp-dev prometheus-cpp-dev libwslay-dev libjemalloc-dev \
        libhiredis-dev libcurl4-openssl-dev nlohmann-json3-dev && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY policy policy
COPY gateway gateway
COPY tests/CMakeLists.txt tests/CMakeLists.txt
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOAT_BUILD_TESTS=OFF && \
    ninja -C build moat && strip build/gateway/cli/moat

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        libuv1 libssl3 libyaml-cpp0.7 libprometheus-cpp-core1.0 libwslay1 libjemalloc2 \
        libhiredis0.14 libcurl4 ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --system --gid 10001 moat && \
    useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin moat
COPY --from=build /src/build/gateway/cli/moat /usr/local/bin/moat
# Numeric, so Kubernetes' runAsNonRoot can verify it (a user name cannot be checked and the pod
# is refused), and the same UID the manifests' runAsUser names (deploy/kubernetes/).
USER 10001:10001
EXPOSE 8883 8084 9464
# SIGTERM drains (MQTT 5 clients get DISCONNECT 0x8B); SIGHUP reloads certificates and policy.
STOPSIGNAL SIGTERM
# Healthy while /healthz (on metrics.bind) answers 200, i.e. while the broker is reachable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD ["/usr/local/bin/moat", "health", "-c", "/etc/moat/moat.yaml"]
ENTRYPOINT ["/usr/local/bin/moat"]
CMD ["run", "-c", "/etc/moat/moat.yaml"]
