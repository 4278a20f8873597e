//! Serde types of the Kubernetes objects mirrorconf reads, and the loader that finds them in files.
//!
//! The custom resources are declared with `kube::CustomResource`, so the cluster source can list and
//! watch exactly these types; `ConfigMap` and `Secret` are the upstream `k8s-openapi` types.
//! Only the fields mirrorconf reads are modelled, and serde ignores the others: objects from a
//! cluster are read leniently. Files are read strictly: the loader checks every object against
//! its kind's schema before it is decoded (docs/design.md, "Validation").

mod depth;
mod diagnostic;
mod load;
pub mod pull_secret;

pub use diagnostic::Diagnostic;
pub use k8s_openapi::api::core::v1::{ConfigMap, Secret};
pub(crate) use load::{describe_size, read_text_from, read_text_limited, LimitedRead};
pub use load::{load_paths, load_paths_with, load_text, load_text_with, Limits, LoadError, MAX_DEPTH, MAX_TOKENS};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `mirrorSourcePolicy` values. Kept as strings in the types so that a wrong value is reported by
/// validation with its object and field, instead of failing deserialisation of the whole file.
pub const ALLOW_CONTACTING_SOURCE: &str = "AllowContactingSource";
pub const NEVER_CONTACT_SOURCE: &str = "NeverContactSource";

/// `ImageDigestMirrorSet` (`config.openshift.io/v1`, cluster scoped).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "config.openshift.io", version = "v1", kind = "ImageDigestMirrorSet", plural = "imagedigestmirrorsets")]
#[serde(rename_all = "camelCase")]
pub struct ImageDigestMirrorSetSpec {
    #[serde(default)]
    pub image_digest_mirrors: Vec<MirrorEntry>,
}

/// `ImageTagMirrorSet` (`config.openshift.io/v1`, cluster scoped).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "config.openshift.io", version = "v1", kind = "ImageTagMirrorSet", plural = "imagetagmirrorsets")]
#[serde(rename_all = "camelCase")]
pub struct ImageTagMirrorSetSpec {
    #[serde(default)]
    pub image_tag_mirrors: Vec<MirrorEntry>,
}

/// `ImageContentSourcePolicy` (`operator.openshift.io/v1alpha1`, cluster scoped, deprecated but
/// still honoured). It has no policy field: every entry means `AllowContactingSource`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.openshift.io",
    version = "v1alpha1",
    kind = "ImageContentSourcePolicy",
    plural = "imagecontentsourcepolicies"
)]
#[serde(rename_all = "camelCase")]
pub struct ImageContentSourcePolicySpec {
    #[serde(default)]
    pub repository_digest_mirrors: Vec<MirrorEntry>,
}

/// One `source` with its ordered `mirrors` (the same shape in IDMS, ITMS and ICSP).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorEntry {
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub mirrors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_source_policy: Option<String>,
}

/// `Image` (`config.openshift.io/v1`); only the object named `cluster` is read.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "config.openshift.io", version = "v1", kind = "Image", plural = "images")]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_sources: Option<RegistrySources>,
    #[serde(default, rename = "additionalTrustedCA", skip_serializing_if = "Option::is_none")]
    pub additional_trusted_ca: Option<ConfigMapNameReference>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySources {
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub blocked_registries: Vec<String>,
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    #[serde(default)]
    pub container_runtime_search_registries: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapNameReference {
    #[serde(default)]
    pub name: String,
}

/// Everything mirrorconf reads, from whichever source. Objects keep the order they were found in;
/// nothing downstream depends on that order.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub digest_sets: Vec<ImageDigestMirrorSet>,
    pub tag_sets: Vec<ImageTagMirrorSet>,
    pub content_source_policies: Vec<ImageContentSourcePolicy>,
    /// `Image/cluster`, when present.
    pub image: Option<Image>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    /// Where each object (`Kind/name`) was read from, for messages; empty for a cluster's objects.
    pub origins: BTreeMap<String, Origin>,
}

/// The file an object was read from, and the line it starts on when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// The object's first line.
    pub line: Option<usize>,
    /// The text of the object's document from that line on, to find a value's own line in it.
    pub text: Option<Arc<str>>,
}

impl Origin {
    /// The line of `value` when it is written once in the object's document (so it cannot be the
    /// wrong one), else the object's first line.
    pub fn line_of(&self, value: &str) -> Option<usize> {
        let first = self.line?;
        let offset = self.text.as_deref().and_then(|text| load::value_line(text, value));
        Some(offset.map_or(first, |o| first + o))
    }
}

/// `Kind/name` as used in every message that points at an object.
pub fn object_ref(kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!("{kind}/{}", meta.name.as_deref().unwrap_or("<unnamed>"))
}

/// The CustomResourceDefinitions these types would give: their shape only. The CRDs installed on
/// clusters without them (`deploy/api`) add openshift/api's validation; a test checks that they
/// declare every field these types read, since the API server drops undeclared fields.
pub fn custom_resource_definitions(
) -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![ImageDigestMirrorSet::crd(), ImageTagMirrorSet::crd(), ImageContentSourcePolicy::crd(), Image::crd()]
}
