//! The deployment artifacts agree with each other and with the code: the
//! Kubernetes manifests (names, mount paths, probe ports, one replica,
//! restrictive security context), the configuration they carry (valid, with
//! every secret file a key of the Secret), the Dockerfile and the systemd
//! unit. Schema validation of the manifests is `.ci/run`'s job
//! (kubernetes-validate); `systemd-analyze verify` runs there too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every manifest under deploy/kubernetes, by kind.
fn manifests() -> BTreeMap<String, Value> {
    let mut by_kind = BTreeMap::new();
    for entry in std::fs::read_dir(repo("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: Value = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = doc["kind"].as_str().unwrap().to_string();
            assert!(
                by_kind.insert(kind.clone(), doc).is_none(),
                "two {kind} manifests"
            );
        }
    }
    by_kind
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// The container's mount path of the volume named `volume`.
fn mount_path<'a>(container: &'a Value, volume: &str) -> &'a str {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .map(|m| s(&m["mountPath"]))
        .unwrap_or_else(|| panic!("volume {volume} is not mounted"))
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn kubernetes_manifests_reference_each_other_consistently() {
    let m = manifests();
    let (config_map, secret, sts, service) = (
        &m["ConfigMap"],
        &m["Secret"],
        &m["StatefulSet"],
        &m["Service"],
    );
    assert_eq!(m.len(), 4, "{:?}", m.keys());
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1, "one replica per state database");
    assert_eq!(spec["serviceName"], service["metadata"]["name"]);
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector label {k}");
    }
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "Service selector label {k}");
    }
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // Volumes point at the ConfigMap and Secret defined here.
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v.get("configMap").is_some())
        .unwrap();
    assert_eq!(
        config_volume["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    let secret_volume = volumes.iter().find(|v| v.get("secret").is_some()).unwrap();
    assert_eq!(
        secret_volume["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    // 0440: the non-root user reads the secret files through its fsGroup.
    assert_eq!(secret_volume["secret"]["defaultMode"], 0o440);
    let claim = &spec["volumeClaimTemplates"][0];
    let state_mount = mount_path(c, s(&claim["metadata"]["name"]));
    let config_mount = mount_path(c, s(&config_volume["name"]));
    let secret_mount = mount_path(c, s(&secret_volume["name"]));
    assert!(volume("tmp").get("emptyDir").is_some());

    // The container reads the ConfigMap's file.
    let files = config_map["data"].as_object().unwrap();
    assert_eq!(files.len(), 1);
    let (file_name, toml_text) = files.iter().next().unwrap();
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(
        args,
        ["run", "--config", &format!("{config_mount}/{file_name}")]
    );

    // The configuration's paths land on the mounts.
    let toml: toml::Table = toml::from_str(s(toml_text)).unwrap();
    let state_path = toml["state"]["path"].as_str().unwrap();
    assert_eq!(
        Path::new(state_path).parent().unwrap(),
        Path::new(state_mount),
        "[state] path is on the PersistentVolumeClaim"
    );
    let secret_keys: Vec<&String> = secret["stringData"].as_object().unwrap().keys().collect();
    let mut secret_files = Vec::new();
    collect_secret_files(&toml::Value::Table(toml.clone()), &mut secret_files);
    assert!(secret_files.len() >= 2, "{secret_files:?}");
    for file in &secret_files {
        let (dir, key) = file.rsplit_once('/').unwrap();
        assert_eq!(dir, secret_mount, "{file} is in the Secret's mount");
        assert!(
            secret_keys.iter().any(|k| *k == key),
            "{file}: the Secret has no key {key}"
        );
    }

    // Probes and the Service reach the configured listen port.
    let listen = toml["server"]["listen"].as_str().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "in a pod, listen on all interfaces: {listen}"
    );
    let port = port_of(listen);
    let named_port = |name: &Value| -> u16 {
        match name {
            Value::Number(n) => n.as_u64().unwrap() as u16,
            Value::String(name) => c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
                .as_u64()
                .unwrap() as u16,
            other => panic!("port {other}"),
        }
    };
    let live = &c["livenessProbe"]["httpGet"];
    let ready = &c["readinessProbe"]["httpGet"];
    assert_eq!(
        (s(&live["path"]), named_port(&live["port"])),
        ("/healthz", port)
    );
    assert_eq!(
        (s(&ready["path"]), named_port(&ready["port"])),
        ("/readyz", port)
    );
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"], port);
    assert_eq!(named_port(&service_port["targetPort"]), port);

    // Restrictive security context.
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true);
    assert_ne!(pod_sc["runAsUser"], 0);
    assert_eq!(pod_sc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["automountServiceAccountToken"], false);
    // The shutdown grace (25 s) fits in the pod's termination grace.
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap()
            > claudit::daemon::SHUTDOWN_GRACE.as_secs()
    );
}

/// Values of every `*_file` key (the secrets read from files).
fn collect_secret_files(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                match v.as_str() {
                    Some(path) if k.ends_with("_file") => out.push(path.to_string()),
                    _ => collect_secret_files(v, out),
                }
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| collect_secret_files(v, out)),
        _ => {}
    }
}

#[test]
fn kubernetes_config_is_valid_with_the_secret_mounted() {
    let m = manifests();
    let toml_text = s(&m["ConfigMap"]["data"]["claudit.toml"]).to_string();
    let dir = tempfile::tempdir().unwrap();
    // The Secret, written as the kubelet mounts it.
    for (key, value) in m["Secret"]["stringData"].as_object().unwrap() {
        std::fs::write(dir.path().join(key), s(value)).unwrap();
    }
    let text = toml_text.replace(
        "/run/secrets/claudit/",
        &format!("{}/", dir.path().display()),
    );
    let config = claudit::config::load_str(&text, Path::new("claudit.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("the ConfigMap's claudit.toml is invalid:\n{e}"));
    assert_eq!(config.sources.len(), 1);
    assert_eq!(config.sinks.len(), 1);
    // The probes and the Service reach the metrics server: it must listen
    // on every interface of the pod, on the port they use.
    let listen = config.server.listen.expect("[server] listen is set");
    assert!(listen.ip().is_unspecified(), "{listen}");
}

#[test]
fn dockerfile_matches_the_manifests_and_the_cli() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let last = |prefix: &str| -> String {
        text.lines()
            .rfind(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("Dockerfile has no {prefix}"))
            .to_string()
    };
    assert_eq!(last("USER "), "USER 10001:10001", "non-root");
    assert_eq!(last("VOLUME "), r#"VOLUME ["/var/lib/claudit"]"#);
    assert_eq!(last("EXPOSE "), "EXPOSE 9464");
    assert!(
        last("CMD ").contains(r#""run", "--config", "/etc/claudit/claudit.toml""#),
        "the default config path is the one the manifests mount"
    );
    let joined = text.replace("\\\n", " ");
    let health = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    assert!(
        health.contains(r#"CMD ["/usr/local/bin/claudit", "healthcheck", "--url", "http://127.0.0.1:9464/healthz""#),
        "{health}"
    );
    assert!(text.contains("ca-certificates"));
    // The StatefulSet runs the same user and the same arguments.
    let m = manifests();
    let pod = &m["StatefulSet"]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(
        pod["containers"][0]["args"],
        serde_json::json!(["run", "--config", "/etc/claudit/claudit.toml"])
    );
    assert_eq!(
        claudit::healthcheck::DEFAULT_URL,
        "http://127.0.0.1:9464/healthz"
    );
}

#[test]
fn systemd_unit_notifies_reloads_and_is_hardened() {
    let text = std::fs::read_to_string(repo("deploy/systemd/claudit.service")).unwrap();
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for expected in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=60s",
        "DynamicUser=yes",
        "StateDirectory=claudit",
        "LoadCredential=compliance-key:/etc/claudit/compliance-key",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "RestartPreventExitStatus=78",
        "RestartPreventExitStatus=65",
        "LimitNOFILE=65536",
        "ExecStart=/usr/local/bin/claudit --log-format json run --config /etc/claudit/claudit.toml",
    ] {
        assert!(keys.contains(&expected), "unit lacks {expected}");
    }
    // The stop timeout covers the daemon's shutdown grace.
    let stop: u64 = keys
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop > claudit::daemon::SHUTDOWN_GRACE.as_secs());
}
