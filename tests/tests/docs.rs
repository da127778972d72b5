//! The project documents itself: every link in the README and in `docs/` leads to a
//! file in the repository (no design document elsewhere, no page on the web).

use std::path::Path;

/// The targets of `[text](target)` links in `markdown`.
fn links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .collect()
}

#[test]
fn every_link_in_the_readme_and_docs_is_a_file_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for target in links(&text) {
            let file = target.split('#').next().unwrap();
            if file.is_empty() {
                continue; // an anchor in the same document
            }
            assert!(
                !file.contains("://"),
                "{} links outside the repository: {target}",
                document.display()
            );
            let path = document.parent().unwrap().join(file);
            assert!(
                path.exists(),
                "{} links to {target}, which is not in the repository",
                document.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "the README links to docs/architecture.md and docs/operations.md at least"
    );
    assert!(
        links("see [the design](docs/architecture.md#snapshots).")
            == ["docs/architecture.md#snapshots"]
    );
}
