# An Alpine image with OpenRC and moby-agent, for trying the agent in a
# container. The agent's dependencies come from Alpine's own packages.
# Not built in CI: the build machines have no Docker engine (see README).
FROM alpine:3.20

RUN apk add --no-cache openrc make python3 py3-inotify-simple py3-pyroute2 py3-requests py3-tomli \
        cifs-utils hvtools \
    && sed -i 's/^#rc_sys=""/rc_sys="docker"/' /etc/rc.conf

COPY . /src/moby-agent
RUN make -C /src/moby-agent install DESTDIR= \
    && rm -rf /src/moby-agent \
    && rc-update add hv_kvp_daemon default \
    && rc-update add moby-agent default

ENTRYPOINT ["/sbin/init"]
