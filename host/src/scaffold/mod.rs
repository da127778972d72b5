//! `provider-host new-provider`: writes a provider crate that builds, passes
//! `provider-host validate` and its own fixture tests as generated.
//!
//! Two templates: an OpenAI-compatible service (one kit preset), or a provider of its
//! own protocol built on the kit (a JSON-over-SSE decoder, fixtures, error rules),
//! speaking a small example protocol the author replaces with their upstream's. Inside
//! this workspace the crate uses the workspace's dependencies and profile; anywhere
//! else it is a workspace of its own that depends on `provider-sdk` and `provider-kit`
//! by path (`--sdk-path`, or the sources this host was built from when they are still
//! there) or by version, with the `panic = "unwind"` release profile plugins need.

mod templates;

use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// The provider's name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// An OpenAI-compatible service (one preset) rather than a protocol of its own.
    pub openai_compatible: bool,
    /// The crate's folder; it must not exist, or be empty.
    pub path: PathBuf,
    /// The folder holding `provider-sdk/` and `provider-kit/`, for path dependencies
    /// outside this workspace; `None` uses the sources this host was built from when
    /// they exist, else version dependencies.
    pub sdk_path: Option<PathBuf>,
}

/// Why a crate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not usable as a provider and crate name.
    #[error("`{0}` is not a provider name: use lowercase letters, digits and `-`, starting with a letter (such as `acme` or `acme-cloud`)")]
    BadName(String),
    /// The target folder has files in it.
    #[error("{0} already exists and is not empty: choose another --path")]
    NotEmpty(PathBuf),
    /// `--sdk-path` does not hold the SDK.
    #[error("{0} has no provider-sdk/Cargo.toml and provider-kit/Cargo.toml: --sdk-path names the provider-host source folder")]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How the generated crate gets the SDK and the kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependencies {
    /// A member of this workspace (`providers/<name>`): `workspace = true`.
    Workspace,
    /// Path dependencies on a provider-host source folder.
    Path(PathBuf),
    /// Version dependencies (a published SDK).
    Version,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The crate's folder.
    pub path: PathBuf,
    /// The files, relative to it.
    pub files: Vec<&'static str>,
    /// How it depends on the SDK.
    pub dependencies: Dependencies,
    /// The library file `cargo build --release` makes (`lib<name>_provider.so`).
    pub library: String,
}

/// Writes the crate `request` asks for.
pub fn generate(request: &Request) -> Result<Generated, ScaffoldError> {
    let name = &request.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && name.len() <= 64;
    if !valid {
        return Err(ScaffoldError::BadName(name.clone()));
    }
    let path = absolute(&request.path);
    if std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(path));
    }
    let dependencies = dependencies(&path, request.sdk_path.as_deref())?;
    let files = templates::files(name, request.openai_compatible, &dependencies);
    for (file, text) in &files {
        let target = path.join(file);
        let write = |target: &Path| {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, text)
        };
        write(&target).map_err(|source| ScaffoldError::Write {
            path: target.clone(),
            source,
        })?;
    }
    Ok(Generated {
        path,
        files: files.iter().map(|(file, _)| *file).collect(),
        dependencies,
        library: format!("lib{}_provider.so", name.replace('-', "_")),
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Whether a folder is this project's source: it has the SDK and the kit.
fn is_source(dir: &Path) -> bool {
    dir.join("provider-sdk/Cargo.toml").is_file() && dir.join("provider-kit/Cargo.toml").is_file()
}

/// Workspace membership when `path` is `providers/<name>` of a provider-host source
/// folder (the workspace's members are `providers/*`); else path or version.
fn dependencies(path: &Path, sdk_path: Option<&Path>) -> Result<Dependencies, ScaffoldError> {
    let providers = path.parent();
    if let Some(root) = providers
        .filter(|p| p.file_name().is_some_and(|n| n == "providers"))
        .and_then(Path::parent)
        .filter(|root| is_source(root))
    {
        let _ = root;
        return Ok(Dependencies::Workspace);
    }
    if let Some(sdk) = sdk_path {
        let sdk = absolute(sdk);
        return match is_source(&sdk) {
            true => Ok(Dependencies::Path(sdk)),
            false => Err(ScaffoldError::NoSdk(sdk)),
        };
    }
    // The sources this host was built from, when it runs where it was built.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Ok(match is_source(&built_from) {
        true => Dependencies::Path(built_from.canonicalize().unwrap_or(built_from)),
        false => Dependencies::Version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, path: PathBuf, sdk_path: Option<PathBuf>) -> Request {
        Request {
            name: name.to_owned(),
            openai_compatible: false,
            path,
            sdk_path,
        }
    }

    #[test]
    fn under_providers_of_the_sources_it_is_a_workspace_member() {
        let root = tempfile::tempdir().unwrap();
        for krate in ["provider-sdk", "provider-kit"] {
            std::fs::create_dir_all(root.path().join(krate)).unwrap();
            std::fs::write(root.path().join(krate).join("Cargo.toml"), "").unwrap();
        }
        let path = root.path().join("providers/acme-cloud");
        let generated = generate(&request("acme-cloud", path.clone(), None)).unwrap();
        assert_eq!(generated.dependencies, Dependencies::Workspace);
        assert_eq!(generated.library, "libacme_cloud_provider.so");
        let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("provider-kit.workspace = true"),
            "{manifest}"
        );
        assert!(
            manifest.contains("name = \"acme_cloud_provider\""),
            "{manifest}"
        );
        let lib = std::fs::read_to_string(path.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct AcmeCloud {") && lib.contains("ACME_CLOUD_API_KEY"));
        assert!(!lib.contains("__"), "every placeholder is filled");
    }

    #[test]
    fn elsewhere_it_is_a_workspace_of_its_own_that_unwinds() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = dir.path().join("acme");
        let generated = generate(&request("acme", path.clone(), Some(sources))).unwrap();
        assert!(matches!(generated.dependencies, Dependencies::Path(_)));
        let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]") && manifest.contains("panic = \"unwind\""));
        let e = generate(&request(
            "acme",
            dir.path().join("x"),
            Some(dir.path().into()),
        ));
        assert!(matches!(e, Err(ScaffoldError::NoSdk(_))));
    }

    #[test]
    fn names_must_be_crate_and_routing_names() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["Acme", "1acme", "acme-", "ac me", "acme_x", ""] {
            let e = generate(&request(bad, dir.path().join("x"), None)).unwrap_err();
            assert!(
                e.to_string().contains("is not a provider name"),
                "{bad}: {e}"
            );
        }
    }
}
