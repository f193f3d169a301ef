"""ops.deploy_yaml: the compose file and the Kubernetes manifests parse,
and say what they must.

Every deploy/**/*.yaml and *.yml parses (python3-yaml). Then:
- docker-compose.yml has kafka, llmsim and extractd, extractd waits for
  its topics, and the input topic's partition count is what the KEDA
  annotation records;
- the Deployment's liveness probe is /healthz and its readiness probe is
  /readyz, on the port the ConfigMap's http.listen opens; the API key
  comes from a Secret (never a literal), and the pod runs as non-root;
- the kustomization lists every manifest in deploy/k8s;
- the KEDA ScaledObject targets the Deployment, scales on the Kafka lag of
  the ConfigMap's group and input topic, and its maxReplicaCount is not
  above the input topic's partition count.
"""

import glob
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402


def load_all(path):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        raise opshelp.TestFailure("%s does not parse: %s" % (path, e))
    check(docs, "%s is empty", path)
    return docs


def cfg_value(cfg, group, key):
    """A string setting from libconfig text (enough for our ConfigMap)."""
    g = re.search(r"^%s:\s*\{(.*?)^\};" % group, cfg, re.S | re.M)
    check(g is not None, "no %s group in the ConfigMap's config", group)
    m = re.search(r'^\s*%s\s*=\s*"([^"]*)";' % key, g.group(1), re.M)
    check(m is not None, "no %s.%s in the ConfigMap's config", group, key)
    return m.group(1)


def body(a):
    deploy = os.path.join(a.source, "deploy")
    files = sorted(glob.glob(os.path.join(deploy, "**", "*.y*ml"),
                             recursive=True))
    docs = {}
    for f in files:
        docs[os.path.relpath(f, deploy)] = load_all(f)
    log("parsed %s", ", ".join(sorted(docs)))
    check("docker-compose.yml" in docs, "no deploy/docker-compose.yml")

    k8s = {}
    for name, ds in docs.items():
        if name.startswith("k8s/"):
            for d in ds:
                check(isinstance(d, dict) and "kind" in d,
                      "%s: a document without kind", name)
                k8s[d["kind"]] = (name, d)
    for kind in ("Deployment", "ConfigMap", "ScaledObject",
                 "Kustomization"):
        check(kind in k8s, "deploy/k8s has no %s", kind)

    # Kustomization: every manifest is in it.
    listed = set(k8s["Kustomization"][1].get("resources", []))
    manifests = {os.path.basename(n) for n in docs
                 if n.startswith("k8s/") and
                 not n.endswith("kustomization.yaml")}
    check(listed == manifests, "kustomization lists %s, files are %s",
          sorted(listed), sorted(manifests))

    cfg = k8s["ConfigMap"][1]["data"]["extractd.cfg"]
    group = cfg_value(cfg, "kafka", "group")
    topic = cfg_value(cfg, "kafka", "input_topic")
    listen = cfg_value(cfg, "http", "listen")
    port = int(listen.rsplit(":", 1)[1])
    check(not listen.startswith("127."), "http.listen %r is not reachable "
          "by the kubelet's probes", listen)
    check(not re.search(r"(sk-|api_key\s*=\s*\"\w)", cfg),
          "an API key in the ConfigMap")

    # Deployment: probes, secret, user.
    dep = k8s["Deployment"][1]
    pod = dep["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "extractd"]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path, "%s path %r, want %s", probe,
              get.get("path"), path)
        p = get.get("port")
        check(ports.get(p, p) == port, "%s port %r is not http.listen's %d",
              probe, p, port)
    secrets = [v for v in pod.get("volumes", []) if "secret" in v]
    env_secret = [e for e in c.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})]
    check(secrets or env_secret, "the API key comes from no Secret")
    key_file = cfg_value(cfg, "llm", "api_key_file")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    for v in secrets:
        check(key_file.startswith(mounts.get(v["name"], "?") + "/"),
              "llm.api_key_file %r is not in the Secret's mount %r",
              key_file, mounts.get(v["name"]))
    check(all("value" not in e or "KEY" not in e["name"].upper()
              for e in c.get("env", [])), "a literal key in env")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
          "the pod may run as root")
    check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
          "the root filesystem is writable")
    # SIGTERM ends extractd within shutdown.timeout_ms (the ConfigMap's,
    # else the default): the kubelet must wait longer before SIGKILL.
    m = re.search(r"^shutdown:\s*\{[^}]*timeout_ms\s*=\s*(\d+);", cfg,
                  re.M | re.S)
    shutdown_ms = int(m.group(1)) if m else 15000
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace * 1000 > shutdown_ms + 2000, "terminationGracePeriodSeconds "
          "%d is not above shutdown.timeout_ms %d", grace, shutdown_ms)
    # exactly-once claims its transactional.id slot with a lock file in
    # /run/extractd: writable although the root filesystem is not.
    check(mounts.get("run") == "/run/extractd" and any(
        v["name"] == "run" and "emptyDir" in v for v in pod["volumes"]),
        "no writable /run/extractd for the exactly-once slot lock")

    # KEDA: lag of our group on our topic; no more replicas than
    # partitions.
    so_name, so = k8s["ScaledObject"]
    spec = so["spec"]
    check(spec["scaleTargetRef"]["name"] == dep["metadata"]["name"],
          "%s scales %r, not the Deployment", so_name,
          spec["scaleTargetRef"]["name"])
    (trig,) = [t for t in spec["triggers"] if t["type"] == "kafka"]
    md = trig["metadata"]
    check(md["consumerGroup"] == group and md["topic"] == topic,
          "KEDA watches %s/%s, extractd is %s/%s", md["consumerGroup"],
          md["topic"], group, topic)
    parts = int(so["metadata"]["annotations"]
                ["extractd/input-topic-partitions"])
    check(1 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
          <= parts, "replicas %s..%s for %d partitions",
          spec.get("minReplicaCount"), spec["maxReplicaCount"], parts)
    check(int(md["lagThreshold"]) > 0, "lagThreshold %r", md["lagThreshold"])

    # Compose: the three services, topics first, the same partition count.
    (compose,) = docs["docker-compose.yml"]
    svc = compose["services"]
    for s in ("kafka", "llmsim", "extractd"):
        check(s in svc, "docker-compose.yml has no %s service", s)
    deps = svc["extractd"].get("depends_on", {})
    check(any(v.get("condition") == "service_completed_successfully"
              for v in deps.values()),
          "extractd does not wait for the topics: %s", deps)
    script = " ".join(" ".join(s.get("command", []) or [])
                      for s in svc.values()
                      if isinstance(s.get("command"), list))
    m = re.search(r"\btexts:(\d+)\b", script)
    check(m is not None, "the compose file creates no texts topic")
    check(int(m.group(1)) == parts, "compose makes %s input partitions, "
          "the KEDA annotation says %d", m.group(1), parts)
    log("k8s: probes /healthz /readyz on %d, KEDA %d..%d replicas for %d "
        "partitions; compose: %s", port, spec["minReplicaCount"],
        spec["maxReplicaCount"], parts, ", ".join(svc))


if __name__ == "__main__":
    opshelp.run_static(body)
