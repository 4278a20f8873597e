//! Rendering N ImageDigestMirrorSet entries, YAML parsing included: load + validate + merge +
//! registries.conf (and the Windows hosts.toml tree, and `validate`'s containerd warnings). The
//! reference (openshift/runtime-utils) is quadratic in N; mirrorconf should grow near-linearly.
//! The YAML is one document per object, loaded one by one (as files in a folder): a single text of
//! 100,000 entries would be over the per-file input limit.
//!
//! cargo bench --bench render

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mirrorconf::model::{load_text, Inputs};
use mirrorconf::policy::Policy;
use mirrorconf::render::{hosts_toml, registries_conf};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// N entries over 100 objects, each with two mirrors, over 50 registries: realistic oc-mirror output.
/// One YAML text per object.
fn manifests(n: usize) -> Vec<String> {
    let per_object = n.div_ceil(100);
    let mut texts = Vec::new();
    for (i, _) in (0..n).step_by(per_object).enumerate() {
        let mut out = String::with_capacity(per_object * 160);
        write!(out, "---\napiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: idms-{i}\nspec:\n  imageDigestMirrors:\n").unwrap();
        for j in i * per_object..((i + 1) * per_object).min(n) {
            let reg = j % 50;
            write!(
                out,
                "  - source: registry-{reg}.example.com/team-{j}/app\n    mirrors:\n    - mirror.corp.example:8443/r{reg}/team-{j}/app\n    - backup.corp.example/r{reg}/team-{j}/app\n"
            )
            .unwrap();
        }
        texts.push(out);
    }
    texts
}

/// Loads every object's text into one input, as a folder of files would give it.
fn load(texts: &[String]) -> Inputs {
    let mut inputs = Inputs::default();
    for (i, t) in texts.iter().enumerate() {
        let one = load_text(Path::new(&format!("bench-{i}.yaml")), t).unwrap();
        inputs.digest_sets.extend(one.digest_sets);
    }
    inputs
}

fn bench(c: &mut Criterion) {
    let base = "unqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\n";
    let mut group = c.benchmark_group("render_idms_entries");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    for n in [1_000usize, 10_000, 20_000, 100_000] {
        let yaml = manifests(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("registries_conf", n), &yaml, |b, yaml| {
            b.iter(|| {
                let policy = Policy::from_inputs(&load(yaml)).unwrap();
                registries_conf::render(&policy, base).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("windows_hosts_toml", n), &yaml, |b, yaml| {
            b.iter(|| {
                let policy = Policy::from_inputs(&load(yaml)).unwrap();
                hosts_toml::render(&policy, None, &hosts_toml::CaFiles::new()).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("containerd_warnings", n), &yaml, |b, yaml| {
            b.iter(|| {
                let policy = Policy::from_inputs(&load(yaml)).unwrap();
                hosts_toml::warnings(&policy)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
