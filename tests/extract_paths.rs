//! The path-safety suite of `ibackup extract`: hostile names in Manifest.db, a blob that is a
//! link, a destination with links planted where folders and files go, and a destination inside
//! the backup. Each checks that nothing appeared outside DIR (the surroundings fingerprinted)
//! and that the backup is unchanged.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{
    add_file_row, blob_of, extract_run, tree_fingerprint, write_backup, Defect, Run, Spec,
};

fn extract(backup: &Path, to: &Path, extra: &[&str]) -> Run {
    extract_run(backup, to, extra, &[])
}

/// A test's folder: the backup, and beside it `outside/` (a place an escape would reach) and
/// the destination `out/`.
struct Scene {
    dir: tempfile::TempDir,
    backup: PathBuf,
}

impl Scene {
    fn new(spec: &Spec) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup");
        write_backup(&backup, spec);
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/keep.txt"), b"the user's own file").unwrap();
        Scene { dir, backup }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Everything in the test's folder except the destination.
    fn surroundings(&self) -> Vec<(String, String)> {
        tree_fingerprint(self.dir.path())
            .into_iter()
            .filter(|(path, _)| {
                !(path == "out" || path.starts_with("out/") || path.starts_with("out\\"))
            })
            .collect()
    }

    /// Adds a file row with its blob.
    fn add_file(&self, domain: &str, path: &str, data: &[u8]) {
        let id = add_file_row(&self.backup, domain, path, data.len() as u64);
        let blob = self.backup.join(&id[..2]).join(&id);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(blob, data).unwrap();
    }
}

fn refused_paths(report: &serde_json::Value) -> Vec<(String, String)> {
    report["refused"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["domain"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn hostile_names_in_the_manifest_are_refused_and_nothing_escapes() {
    let scene = Scene::new(&Spec::default().with(Defect::SuspiciousPath));
    let hostile: &[(&str, &str)] = &[
        ("HomeDomain", "/tmp/ibackup-absolute-escape"),
        ("HomeDomain", "Library/../../../outside/keep.txt"),
        ("HomeDomain", "Library/./dot"),
        ("HomeDomain", "Library//double"),
        ("HomeDomain", "Library\\..\\..\\outside\\win.txt"),
        ("HomeDomain", "C:evil.txt"),
        ("..", "outside/keep.txt"),
        ("HomeDomain/../../outside", "keep.txt"),
        ("", "empty-domain.txt"),
    ];
    for (domain, path) in hostile {
        scene.add_file(domain, path, b"planted by a tampered backup");
    }
    let long = format!("Library/{}", "x".repeat(256));
    scene.add_file("HomeDomain", &long, b"long");
    let backup_before = tree_fingerprint(&scene.backup);
    let around_before = scene.surroundings();
    let run = extract(&scene.backup, &scene.out(), &[]);
    let report = run.json_exit(1);
    // The writer's own ../../outside/escape.txt, the nine above and the long name.
    assert_eq!(report["refused"]["total"], 11, "{:#}", report["refused"]);
    let refused = refused_paths(&report);
    for (domain, path) in hostile {
        assert!(
            refused.contains(&(domain.to_string(), path.to_string())),
            "{domain} {path}"
        );
    }
    assert!(refused.contains(&("HomeDomain".into(), "../../outside/escape.txt".into())));
    assert_eq!(report["written"]["files"], 40);
    assert_eq!(scene.surroundings(), around_before);
    assert_eq!(tree_fingerprint(&scene.backup), backup_before);
    assert!(!Path::new("/tmp/ibackup-absolute-escape").exists());
    // Every file written is under the destination, in a domain folder.
    let names: Vec<_> = fs::read_dir(scene.out())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| n.to_str().unwrap().contains("Domain")),
        "{names:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_blob_that_is_a_link_is_refused_not_followed() {
    let scene = Scene::new(&Spec::default());
    let secret = scene.dir.path().join("outside/secret.txt");
    fs::write(&secret, b"not the backup's to give").unwrap();
    scene.add_file(
        "HomeDomain",
        "Library/linked.txt",
        b"placeholder of the same size!!!!",
    );
    let blob = blob_of(&scene.backup, "HomeDomain", "Library/linked.txt");
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&secret, &blob).unwrap();
    let backup_before = tree_fingerprint(&scene.backup);
    let around_before = scene.surroundings();
    let report = extract(&scene.backup, &scene.out(), &[]).json_exit(1);
    assert_eq!(report["refused"]["total"], 1);
    assert_eq!(report["refused"]["files"][0]["path"], "Library/linked.txt");
    assert!(!scene.out().join("HomeDomain/Library/linked.txt").exists());
    assert_eq!(scene.surroundings(), around_before);
    assert_eq!(tree_fingerprint(&scene.backup), backup_before);
}

#[cfg(unix)]
#[test]
fn links_planted_in_the_destination_are_never_followed() {
    use std::os::unix::fs::symlink;
    let scene = Scene::new(&Spec::default());
    let out = scene.out();
    let outside = scene.dir.path().join("outside");
    fs::create_dir_all(out.join("CameraRollDomain/Media")).unwrap();
    // A folder on the way is a link to outside.
    symlink(&outside, out.join("HomeDomain")).unwrap();
    // A deeper folder is a link too.
    symlink(&outside, out.join("CameraRollDomain/Media/DCIM")).unwrap();
    // A file's own name is a link to a file outside.
    let file = "MediaDomain/Media/Recordings";
    fs::create_dir_all(out.join(file)).unwrap();
    let rows = {
        let conn = rusqlite::Connection::open(scene.backup.join("Manifest.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT relativePath FROM Files WHERE domain = 'MediaDomain' AND flags = 1 ORDER BY relativePath")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let victim = out.join("MediaDomain").join(&rows[0]);
    symlink(outside.join("keep.txt"), &victim).unwrap();

    let around_before = scene.surroundings();
    let backup_before = tree_fingerprint(&scene.backup);
    // Without --overwrite the planted file link counts as an existing file: nothing written.
    let report = extract(&scene.backup, &out, &[]).json_exit(2);
    assert_eq!(report["error"]["code"], "extract.exists");
    assert_eq!(scene.surroundings(), around_before);

    let report = extract(&scene.backup, &out, &["--overwrite"]).json_exit(1);
    let reasons: Vec<String> = report["refused"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}: {}", f["domain"], f["path"], f["reason"]))
        .collect();
    // 5 HomeDomain files, 5 camera roll files, one MediaDomain file.
    assert_eq!(report["refused"]["total"], 11, "{reasons:#?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("a link is already there")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("where a folder must be")),
        "{reasons:#?}"
    );
    assert_eq!(report["written"]["files"], 29);
    assert_eq!(fs::read_link(&victim).unwrap(), outside.join("keep.txt"));
    assert_eq!(scene.surroundings(), around_before);
    assert_eq!(tree_fingerprint(&scene.backup), backup_before);
}

#[test]
fn a_destination_inside_the_backup_is_refused() {
    let scene = Scene::new(&Spec::default());
    let backup_before = tree_fingerprint(&scene.backup);
    for inside in [
        scene.backup.join("extracted"),
        scene.backup.clone(),
        scene.backup.join("a/b"),
    ] {
        let run = extract(&scene.backup, &inside, &[]);
        let report = run.json_exit(2);
        assert_eq!(report["error"]["code"], "extract.inside_backup");
        assert_eq!(tree_fingerprint(&scene.backup), backup_before);
    }
    // Through a link to the backup too.
    #[cfg(unix)]
    {
        let link = scene.dir.path().join("to-backup");
        std::os::unix::fs::symlink(&scene.backup, &link).unwrap();
        let report = extract(&scene.backup, &link.join("x"), &[]).json_exit(2);
        assert_eq!(report["error"]["code"], "extract.inside_backup");
        assert_eq!(tree_fingerprint(&scene.backup), backup_before);
    }
    // The backup inside the destination is fine.
    let report = extract(
        &scene.backup,
        scene.dir.path(),
        &["--domain", "HealthDomain"],
    )
    .json_exit(0);
    assert_eq!(report["written"]["files"], 5);
    assert_eq!(tree_fingerprint(&scene.backup), backup_before);
}
