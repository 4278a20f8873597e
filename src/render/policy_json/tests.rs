use super::*;

fn policy(allowed: &[&str], blocked: &[&str]) -> Policy {
    Policy {
        allowed_scopes: allowed.iter().map(|s| s.to_string()).collect(),
        blocked_scopes: blocked.iter().map(|s| s.to_string()).collect(),
        ..Policy::default()
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn allowed_registries_reject_by_default_and_accept_each_scope() {
    let out = render(&policy(&["mirror.corp", "quay.io/team", "a.io/b/c/d"], &[]), None).unwrap().unwrap();
    let doc = parse(&out);
    assert_eq!(doc["default"], json!([{"type": "reject"}]));
    let accept = json!([{"type": "insecureAcceptAnything"}]);
    assert_eq!(doc["transports"]["docker"]["mirror.corp"], accept);
    assert_eq!(doc["transports"]["docker"]["quay.io/team"], accept);
    assert_eq!(doc["transports"]["docker"]["a.io/b/c/d"], accept);
    assert_eq!(doc["transports"]["atomic"]["quay.io/team"], accept);
    assert!(doc["transports"]["atomic"].get("a.io/b/c/d").is_none(), "three '/' never reach atomic");
    // The default base's docker-daemon transport is kept.
    assert_eq!(doc["transports"]["docker-daemon"][""], accept);
}

#[test]
fn blocked_registries_accept_by_default_and_reject_each_scope() {
    let doc = parse(&render(&policy(&[], &["bad.io", "*.evil.example"]), None).unwrap().unwrap());
    assert_eq!(doc["default"], json!([{"type": "insecureAcceptAnything"}]));
    assert_eq!(doc["transports"]["docker"]["bad.io"], json!([{"type": "reject"}]));
    assert_eq!(doc["transports"]["docker"]["*.evil.example"], json!([{"type": "reject"}]));
    assert_eq!(doc["transports"]["atomic"]["bad.io"], json!([{"type": "reject"}]));
}

#[test]
fn the_nodes_own_keys_stay_and_no_list_gives_the_file_back_byte_for_byte() {
    let base = "{ \"default\": [{\"type\": \"reject\"}],\n  \"transports\": {\"docker\": {\"registry.redhat.io\": [{\"type\": \"signedBy\", \"keyType\": \"GPGKeys\", \"keyPath\": \"/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release\"}]},\n \"oci\": {\"\": [{\"type\": \"insecureAcceptAnything\"}]}} }";
    assert_eq!(render(&Policy::default(), Some(base)).unwrap().as_deref(), Some(base));
    assert_eq!(render(&Policy::default(), None).unwrap(), None, "no file on the node, no lists: no file");
    let doc = parse(&render(&policy(&[], &["bad.io"]), Some(base)).unwrap().unwrap());
    assert_eq!(doc["transports"]["docker"]["registry.redhat.io"][0]["type"], "signedBy");
    assert_eq!(doc["transports"]["oci"][""][0]["type"], "insecureAcceptAnything");
    assert_eq!(doc["transports"]["docker"]["bad.io"], json!([{"type": "reject"}]));
}

#[test]
fn a_base_that_is_not_a_policy_is_refused_without_quoting_it() {
    for (base, want) in [
        ("{\"default\": [", "not valid JSON (line 1"),
        ("[1, 2]", "the top level must be an object"),
        ("{\"transports\": 7}", "\"transports\" must be an object"),
        ("{\"transports\": {\"docker\": []}}", "\"transports\".\"docker\" must be an object"),
    ] {
        let e = render(&policy(&["a.io"], &[]), Some(base)).unwrap_err().to_string();
        assert!(e.contains(want), "{base}: {e}");
    }
    let secret = "{\"default\": \"s3cret-in-a-string";
    let e = render(&policy(&["a.io"], &[]), Some(secret)).unwrap_err().to_string();
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn decisions_follow_the_most_specific_scope() {
    let text = render(&policy(&["quay.io/team", "*.corp.example"], &[]), None).unwrap().unwrap();
    assert_eq!(decide(&text, "quay.io/team/app"), Some(("quay.io/team".into(), true)));
    assert_eq!(decide(&text, "quay.io/other/app"), Some(("default".into(), false)));
    assert_eq!(decide(&text, "mirror.corp.example:5000/x"), Some(("*.corp.example".into(), true)));
    let text = render(&policy(&[], &["quay.io/team/bad"]), None).unwrap().unwrap();
    assert_eq!(decide(&text, "quay.io/team/bad"), Some(("quay.io/team/bad".into(), false)));
    assert_eq!(decide(&text, "quay.io/team/good"), Some(("default".into(), true)));
}

#[test]
fn warnings_name_the_images_a_node_needs_and_mirrors_outside_the_allowed_scopes() {
    let mut p = policy(&["quay.io/team", "*.corp.example"], &[]);
    p.digest_entries.push(crate::policy::SourceEntry {
        object: "ImageDigestMirrorSet/d".into(),
        source: "quay.io/team/app".into(),
        mirrors: vec!["mirror.corp.example/app".into(), "elsewhere.io/app".into()],
        never_contact_source: false,
    });
    let must = vec!["registry.k8s.io/pause".to_string(), "quay.io/team/mirrorconf".to_string()];
    let w = warnings(&p, &must);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w.iter().any(|l| l.starts_with("allowedRegistries refuses registry.k8s.io/pause")), "{w:#?}");
    assert!(w.iter().any(|l| l.contains("mirror \"elsewhere.io/app\" of the allowed source")), "{w:#?}");
    let w = warnings(&policy(&[], &["registry.k8s.io"]), &must);
    assert_eq!(w, ["blockedRegistries refuses registry.k8s.io/pause, which every node needs: pods cannot start"]);
    assert!(warnings(&policy(&[], &[]), &must).is_empty());
}
