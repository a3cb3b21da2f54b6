//! The README and the documents under `docs/` link only files that exist
//! inside the repository: a clone has everything the documentation points to.

use std::path::{Component, Path, PathBuf};

/// The targets of the inline markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// `path` with `.` and `..` removed lexically; `None` if it climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            _ => return None,
        }
    }
    Some(out)
}

#[test]
fn readme_and_docs_link_only_files_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(PathBuf::from("docs").join(path.file_name().expect("name")));
        }
    }
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(root.join(page)).expect("page");
        let dir = page.parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            let target = target.split_whitespace().next().unwrap_or("");
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            checked += 1;
            match normalize(&dir.join(file)) {
                None => bad.push(format!(
                    "{}: `{target}` is outside the repository",
                    page.display()
                )),
                Some(p) if !root.join(&p).exists() => {
                    bad.push(format!("{}: `{target}` does not exist", page.display()))
                }
                Some(_) => {}
            }
        }
    }
    assert!(checked >= 10, "only {checked} links found");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn links_outside_the_repository_are_noticed() {
    assert_eq!(
        link_targets("see [spec](../shared/spec.md) and [x](a.md#b).\n```\n[no](c.md)\n```"),
        ["../shared/spec.md", "a.md#b"]
    );
    assert_eq!(normalize(Path::new("../shared/spec.md")), None);
    assert_eq!(
        normalize(Path::new("docs/../tests/x.json")),
        Some(PathBuf::from("tests/x.json"))
    );
}
