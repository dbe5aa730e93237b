#!/usr/bin/python3
"""Policy test over the deployment files (ctest `deploy_hardening`, issue 19.4).

    /usr/bin/python3 tests/deploy/check_hardening.py [REPO_ROOT]

The manifests are what operators copy: a weakened one weakens every deployment made from
it. This reads them (python3-yaml only, no cluster, no Docker) and fails, one line per
problem, when one of the rules of README "Deployment hardening" is broken:

Kubernetes (deploy/kubernetes/*.yaml), every pod:
  - seccompProfile RuntimeDefault (or Localhost), runAsNonRoot, never UID 0, no host
    namespaces; every container: allowPrivilegeEscalation false, not privileged,
    readOnlyRootFilesystem, capabilities drop ALL (and add none), CPU and memory limits;
  - selected by a NetworkPolicy with Ingress (deny by default);
  - Moat pods: a listener that accepts PROXY headers trusts only narrow CIDRs (IPv4 /24 or
    longer, IPv6 /64 or longer) and its port is admitted from those CIDRs only; the metrics
    port from Prometheus (pod/namespace selectors) or the balancer's CIDRs only;
  - broker and Redis pods: reachable from Moat pods only; a broker in Moat's own pod (a
    sidecar) listens on loopback only and no policy opens its port.
Compose (deploy/compose/compose*.yaml), every service:
  - read_only, cap_drop ALL, no-new-privileges, memory and pids limits, explicit networks,
    not privileged, no host network, non-root (`user:` unless its image runs as non-root);
  - the broker and Redis publish nothing and sit only on internal networks shared with Moat
    alone; Moat's metrics port is never published beyond loopback;
  - PROXY trust: every trusted_proxies entry is one address (/32), the fixed address of the
    balancer, on a network that holds only the balancer and Moat.
Dockerfile: the final USER is a numeric, non-zero UID (runAsNonRoot can verify it).
"""

import ipaddress
import os
import re
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
BROKER_IMAGES = ("mosquitto", "emqx", "vernemq", "hivemq")
# Images that run as a non-root user by default (their Dockerfile's USER): compose services
# using them need no `user:`. Anything else must say which user it runs as.
NON_ROOT_IMAGES = ("haproxy:", "prom/prometheus:")

problems = []


def fail(where, message):
    problems.append("%s: %s" % (where, message))


def is_moat_image(image):
    return bool(image) and re.match(r"^(.*/)?moat(:|$)", image) is not None


def is_broker_image(image):
    return bool(image) and any(b in image for b in BROKER_IMAGES)


def is_redis_image(image):
    return bool(image) and re.match(r"^(.*/)?redis(:|$)", image) is not None


def narrow(cidr):
    net = ipaddress.ip_network(str(cidr), strict=False)
    return net.prefixlen >= (24 if net.version == 4 else 64)


def within(cidr, trusted):
    net = ipaddress.ip_network(str(cidr), strict=False)
    return any(net.version == t.version and net.subnet_of(t) for t in trusted)


def bind_port(bind, default):
    m = re.search(r":(\d+)$", str(bind or ""))
    return int(m.group(1)) if m else default


# ------------------------------------------------------------------------------ Kubernetes

def pod_of(doc):
    if doc.get("kind") in WORKLOADS:
        return doc["spec"]["template"]
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    if doc.get("kind") == "Pod":
        return doc
    return None


def selects(policy, labels):
    sel = policy.get("spec", {}).get("podSelector") or {}
    if sel.get("matchExpressions"):
        return False  # not evaluated here: keep the manifests to matchLabels
    return all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items())


def has_ingress(policy):
    spec = policy.get("spec", {})
    types = spec.get("policyTypes")
    return "Ingress" in types if types else True


def rule_admits(rule, port, names):
    """Does an ingress rule admit TCP `port` (also known by the container port `names`)?"""
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p or p["port"] == port or p["port"] in names:
            return True
        end = p.get("endPort")
        if isinstance(p["port"], int) and end and p["port"] <= port <= end:
            return True
    return False


def admitted_from(policies, port, names):
    """Every `from` list of the rules admitting `port`; None stands for "from anywhere"."""
    out = []
    for pol in policies:
        for rule in pol["spec"].get("ingress") or []:
            if rule_admits(rule, port, names):
                out.append(rule.get("from") or None)
    return out


def container_port_names(pod, port):
    return {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
            if p.get("containerPort") == port and "name" in p}


def check_security(where, pod):
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            fail(where, "%s: true" % host)
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        cw = "%s container %s" % (where, c["name"])
        csc = c.get("securityContext") or {}

        def eff(key):
            return csc[key] if key in csc else psc.get(key)

        seccomp = (eff("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            fail(cw, "no seccompProfile RuntimeDefault (pod or container securityContext)")
        if eff("runAsNonRoot") is not True:
            fail(cw, "runAsNonRoot is not true")
        if eff("runAsUser") == 0:
            fail(cw, "runAsUser 0")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            fail(cw, "privileged")
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(cw, "readOnlyRootFilesystem is not true")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            fail(cw, "capabilities do not drop ALL")
        if caps.get("add"):
            fail(cw, "capabilities added: %s" % caps["add"])
        limits = (c.get("resources") or {}).get("limits") or {}
        for r in ("cpu", "memory"):
            if r not in limits:
                fail(cw, "no %s limit" % r)


def moat_config(docs, pod):
    """Moat's moat.yaml, from the ConfigMap mounted into `pod`."""
    maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    for vol in pod["spec"].get("volumes") or []:
        cm = maps.get((vol.get("configMap") or {}).get("name"))
        if cm and "moat.yaml" in (cm.get("data") or {}):
            return yaml.safe_load(cm["data"]["moat.yaml"])
    return None


def mosquitto_listeners(docs, pod):
    maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    out = set()
    for vol in pod["spec"].get("volumes") or []:
        cm = maps.get((vol.get("configMap") or {}).get("name"))
        conf = ((cm or {}).get("data") or {}).get("mosquitto.conf")
        for line in (conf or "").splitlines():
            words = line.split()
            if words and words[0] == "listener":
                out.add((int(words[1]), words[2] if len(words) > 2 else None))
    return sorted(out, key=str)


def check_kubernetes(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    pods = [(d, pod_of(d)) for d in docs if pod_of(d)]
    moat_labels = [p["metadata"].get("labels") or {} for _, p in pods
                   if any(is_moat_image(c.get("image")) for c in p["spec"]["containers"])]

    def from_moat_only(where, froms):
        for peers in froms:
            if peers is None:
                fail(where, "admitted from anywhere (must be Moat's pods only)")
                continue
            for peer in peers:
                sel = (peer.get("podSelector") or {}).get("matchLabels")
                ok = (sel is not None and "ipBlock" not in peer
                      and "namespaceSelector" not in peer
                      and any(all(lab.get(k) == v for k, v in sel.items())
                              for lab in moat_labels))
                if not ok:
                    fail(where, "admitted from %s (must be Moat's pods only)" % peer)

    for doc, pod in pods:
        where = "%s %s %s" % (os.path.basename(path), doc["kind"], doc["metadata"]["name"])
        check_security(where, pod)
        labels = pod["metadata"].get("labels") or {}
        mine = [p for p in policies if has_ingress(p) and selects(p, labels)]
        if not mine:
            fail(where, "no NetworkPolicy with Ingress selects its pods (%s)" % labels)
        images = [c.get("image") for c in pod["spec"]["containers"]]
        has_moat = any(is_moat_image(i) for i in images)

        if has_moat:
            cfg = moat_config(docs, pod) or {}
            trusted = []
            for lst in cfg.get("listeners") or []:
                port = bind_port(lst.get("bind"), 8883)
                if str(lst.get("proxy_protocol", "off")) == "off":
                    continue
                cidrs = lst.get("trusted_proxies") or []
                nets = [ipaddress.ip_network(str(c), strict=False) for c in cidrs]
                trusted += nets
                for c in cidrs:
                    if not narrow(c):
                        fail(where, "listener %s trusts PROXY headers from %s: too wide "
                             "(the balancer's own subnets only)" % (lst.get("name"), c))
                for peers in admitted_from(mine, port, container_port_names(pod, port)):
                    if peers is None:
                        fail(where, "PROXY listener port %d admitted from anywhere" % port)
                        continue
                    for peer in peers:
                        block = peer.get("ipBlock")
                        if not block or not within(block["cidr"], nets):
                            fail(where, "PROXY listener port %d admitted from %s, outside "
                                 "trusted_proxies %s" % (port, peer, cidrs))
            metrics = cfg.get("metrics") or {}
            if metrics.get("enabled", True):
                mport = bind_port(metrics.get("bind"), 9464)
                for peers in admitted_from(mine, mport, container_port_names(pod, mport)):
                    if peers is None:
                        fail(where, "metrics port %d admitted from anywhere" % mport)
                        continue
                    for peer in peers:
                        block = peer.get("ipBlock")
                        if block and not within(block["cidr"], trusted):
                            fail(where, "metrics port %d admitted from %s (Prometheus or "
                                 "the balancer only)" % (mport, peer))
                        if not block and not (peer.get("podSelector") or {}).get(
                                "matchLabels"):
                            fail(where, "metrics port %d admitted from every pod of %s "
                                 "(select Prometheus' pods)" % (mport, peer))

        for c in pod["spec"]["containers"]:
            image = c.get("image")
            if not (is_broker_image(image) or is_redis_image(image)):
                continue
            cw = "%s container %s" % (where, c["name"])
            ports = [p["containerPort"] for p in c.get("ports") or []]
            if is_broker_image(image):
                listeners = mosquitto_listeners(docs, pod)
                ports += [p for p, _ in listeners]
                if has_moat:
                    for p, addr in listeners:
                        if addr not in ("127.0.0.1", "::1", "localhost"):
                            fail(cw, "broker in Moat's pod listens on %s:%d, not loopback"
                                 % (addr or "*", p))
            if not ports:
                ports = [6379] if is_redis_image(image) else [1883]
            for port in sorted(set(ports)):
                froms = admitted_from(mine, port, container_port_names(pod, port))
                if has_moat:
                    if froms:
                        fail(cw, "port %d opened by a NetworkPolicy in a sidecar pod" % port)
                else:
                    from_moat_only("%s port %d" % (cw, port), froms)


# ------------------------------------------------------------------------------ compose

def service_networks(svc):
    nets = svc.get("networks")
    if nets is None:
        return {} if svc.get("network_mode") else {"default": {}}  # compose's implicit one
    if isinstance(nets, list):
        return {n: {} for n in nets}
    return {n: (v or {}) for n, v in nets.items()}


def published(svc):
    """(host ip, container port) of each published port."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        ip = parts[0] if len(parts) == 3 else ""
        out.append((ip, int(parts[-1].split("-")[0])))
    return out


def check_compose(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    base = os.path.basename(path)
    services = doc.get("services") or {}
    networks = doc.get("networks") or {}
    moat = {n for n, s in services.items() if "build" in s or is_moat_image(s.get("image"))}
    members = {}
    for name, svc in services.items():
        for net in service_networks(svc):
            members.setdefault(net, set()).add(name)

    for name, svc in services.items():
        where = "%s service %s" % (base, name)
        if svc.get("read_only") is not True:
            fail(where, "read_only is not true")
        if "ALL" not in (svc.get("cap_drop") or []):
            fail(where, "cap_drop does not hold ALL")
        if svc.get("cap_add"):
            fail(where, "cap_add: %s" % svc["cap_add"])
        opts = [str(o).replace("=", ":") for o in svc.get("security_opt") or []]
        if not any(o in ("no-new-privileges", "no-new-privileges:true") for o in opts):
            fail(where, "no security_opt no-new-privileges:true")
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if "mem_limit" not in svc and "memory" not in limits:
            fail(where, "no memory limit (mem_limit)")
        if "pids_limit" not in svc and "pids" not in limits:
            fail(where, "no pids_limit")
        if svc.get("privileged"):
            fail(where, "privileged")
        if svc.get("network_mode"):
            fail(where, "network_mode %s" % svc["network_mode"])
        if "networks" not in svc:
            fail(where, "no explicit networks (it would share `default` with everything)")
        user = str(svc.get("user", ""))
        image = str(svc.get("image", ""))
        if name not in moat and not image.startswith(NON_ROOT_IMAGES):
            if not user or user.split(":")[0] in ("0", "root"):
                fail(where, "runs as root (set user:)")
        if name in moat:
            for ip, port in published(svc):
                if port == 9464 and ip not in ("127.0.0.1", "::1"):
                    fail(where, "metrics port 9464 published on %s" % (ip or "every address"))

        if is_broker_image(image) or is_redis_image(image):
            if published(svc):
                fail(where, "publishes ports %s" % svc.get("ports"))
            for net in service_networks(svc):
                if not (networks.get(net) or {}).get("internal"):
                    fail(where, "network %s is not internal: true" % net)
                others = members.get(net, set()) - moat - {name}
                if others:
                    fail(where, "network %s shared with %s (Moat only)" % (net, sorted(others)))

    # PROXY trust: only the balancer's fixed address, on a network of the balancer and Moat.
    for name in sorted(moat):
        svc = services[name]
        for vol in svc.get("volumes") or []:
            src, _, dst = str(vol).partition(":")
            if not dst.startswith("/etc/moat/moat.yaml"):
                continue
            cfg_path = os.path.join(os.path.dirname(path), src)
            with open(cfg_path) as f:
                cfg = yaml.safe_load(f) or {}
            for lst in cfg.get("listeners") or []:
                if str(lst.get("proxy_protocol", "off")) == "off":
                    continue
                for cidr in lst.get("trusted_proxies") or []:
                    net = ipaddress.ip_network(str(cidr), strict=False)
                    where = "%s service %s (%s) trusted_proxies %s" % (base, name, src, cidr)
                    if net.num_addresses != 1:
                        fail(where, "not a single address (the balancer's fixed address)")
                        continue
                    owners = [(other, n) for other, s in services.items()
                              for n, opts in service_networks(s).items()
                              if ipaddress.ip_address(str(opts.get("ipv4_address") or
                                                          opts.get("ipv6_address") or
                                                          "0.0.0.0")) == net.network_address]
                    if not owners:
                        fail(where, "no service has this fixed address")
                    for other, n in owners:
                        if n not in service_networks(svc):
                            fail(where, "the balancer %s is not on a network with %s"
                                 % (other, name))
                        extra = members.get(n, set()) - moat - {other}
                        if extra:
                            fail(where, "network %s of the balancer also holds %s, which "
                                 "could take its address" % (n, sorted(extra)))


# ------------------------------------------------------------------------------ Dockerfile

def check_dockerfile(path):
    users = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*USER\s+(\S+)", line)
            if m:
                users.append(m.group(1))
    user = users[-1] if users else ""
    uid = user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        fail("Dockerfile", "final USER %r is not a numeric non-root UID (runAsNonRoot cannot "
             "verify a name)" % user)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    kube = os.path.join(root, "deploy", "kubernetes")
    compose = os.path.join(root, "deploy", "compose")
    checked = 0
    for d, check, pattern in ((kube, check_kubernetes, r"\.ya?ml$"),
                              (compose, check_compose, r"^compose.*\.ya?ml$")):
        for name in sorted(os.listdir(d)):
            if re.search(pattern, name):
                check(os.path.join(d, name))
                checked += 1
    check_dockerfile(os.path.join(root, "Dockerfile"))
    if checked == 0:
        fail(root, "no manifests found")
    for p in problems:
        print(p)
    print("deploy_hardening: %d file(s) checked, %d problem(s)" % (checked + 1, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
