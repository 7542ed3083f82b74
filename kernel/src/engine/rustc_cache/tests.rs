//! Tests of the compile cache against a stand-in rustc (a shell script that
//! writes what rustc writes and counts its runs).

use super::*;

/// A stand-in for rustc: writes the dep-info and library into `--out-dir`,
/// reports them as rustc's JSON artifact messages, fails when the source
/// says `error`, reads an environment variable when it says `env!`.
const FAKE_RUSTC: &str = r#"#!/bin/sh
echo run >> "$(dirname "$0")/runs"
prev=; out=; src=
for a in "$@"; do
  [ "$prev" = "--out-dir" ] && out=$a
  case "$a" in *.rs) src=$a ;; esac
  prev=$a
done
mkdir -p "$out"
# Like rustc, outputs are new files renamed into place.
{ printf '%s/ctx.d: %s\n\n' "$out" "$src"
  grep -q 'env!' "$src" && printf '# env-dep:HOME=/root\n'
  printf '%s:\n' "$src"; } > "$out/.d.tmp" && mv "$out/.d.tmp" "$out/ctx.d"
echo "{\"\$message_type\":\"artifact\",\"artifact\":\"$out/ctx.d\",\"emit\":\"dep-info\"}" >&2
if grep -q error "$src"; then
  echo '{"$message_type":"diagnostic","message":"boom"}' >&2
  exit 1
fi
cat "$src" > "$out/.so.tmp" && mv "$out/.so.tmp" "$out/libctx.so"
echo "{\"\$message_type\":\"artifact\",\"artifact\":\"$out/libctx.so\",\"emit\":\"link\"}" >&2
"#;

struct Setup {
    root: PathBuf,
    rustc: PathBuf,
    cache: Cache,
}

impl Setup {
    fn new() -> Setup {
        let root = std::env::temp_dir().join(format!(
            "sb-rustc-cache-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let rustc = bin.join("rustc");
        std::fs::write(&rustc, FAKE_RUSTC).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let setup = Setup {
            cache: Cache {
                dir: root.join("cache"),
                crate_dir: root.join("slot-0"),
            },
            rustc,
            root,
        };
        setup.write_source("fn main() {}");
        setup
    }

    fn write_source(&self, code: &str) {
        std::fs::create_dir_all(self.cache.crate_dir.join("src")).unwrap();
        std::fs::write(self.cache.crate_dir.join("src/lib.rs"), code).unwrap();
    }

    fn out_dir(&self) -> PathBuf {
        self.cache.crate_dir.join("target/debug/deps")
    }

    fn args(&self) -> Vec<OsString> {
        let out = self.out_dir();
        let incremental = self.cache.crate_dir.join("target/debug/incremental");
        [
            "--crate-name",
            "ctx",
            "--edition=2024",
            "src/lib.rs",
            "--error-format=json",
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
            "--crate-type",
            "cdylib",
            "--out-dir",
            out.to_str().unwrap(),
            "-C",
            &format!("incremental={}", incremental.display()),
            "-L",
            &format!("dependency={}", out.display()),
            "-Cprefer-dynamic",
        ]
        .iter()
        .map(OsString::from)
        .collect()
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.root.join("bin/runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Compiles through the cache: (status, stderr).
    fn compile(&self) -> (i32, String) {
        let args = self.args();
        let plan = self
            .cache
            .plan(&self.rustc, &args, &self.cache.crate_dir)
            .expect("cacheable");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = self
            .cache
            .compile(&plan, &self.rustc, &args, &mut out, &mut err);
        (code, String::from_utf8(err).unwrap())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn a_repeated_compile_is_served_from_the_cache() {
    let s = Setup::new();
    let (code, first) = s.compile();
    assert_eq!((code, s.runs()), (0, 1));
    std::fs::remove_file(s.out_dir().join("libctx.so")).unwrap();
    std::fs::remove_file(s.out_dir().join("ctx.d")).unwrap();
    let (code, second) = s.compile();
    assert_eq!((code, s.runs()), (0, 1), "served without running rustc");
    assert_eq!(first, second, "the same messages, with this slot's paths");
    assert_eq!(
        std::fs::read_to_string(s.out_dir().join("libctx.so")).unwrap(),
        "fn main() {}"
    );
    let dep_info = std::fs::read_to_string(s.out_dir().join("ctx.d")).unwrap();
    assert!(dep_info.starts_with(&format!("{}/ctx.d: src/lib.rs", s.out_dir().display())));
}

#[test]
fn a_changed_source_is_compiled_again() {
    let s = Setup::new();
    s.compile();
    s.write_source("fn main() { 1; }");
    s.compile();
    assert_eq!(s.runs(), 2);
    s.write_source("fn main() {}");
    s.compile();
    assert_eq!(s.runs(), 2, "the first source is still cached");
}

#[test]
fn a_failed_compile_is_replayed_with_its_status_and_messages() {
    let s = Setup::new();
    s.write_source("error here");
    let (code, first) = s.compile();
    assert_eq!(code, 1);
    assert!(first.contains("boom"));
    let (code, second) = s.compile();
    assert_eq!((code, s.runs()), (1, 1));
    assert_eq!(first, second);
}

#[test]
fn a_compile_that_read_the_environment_is_not_stored() {
    let s = Setup::new();
    s.write_source(r#"const H: &str = env!("HOME");"#);
    s.compile();
    s.compile();
    assert_eq!(s.runs(), 2);
}

#[test]
fn an_entry_serves_another_slot_with_its_own_paths() {
    let s = Setup::new();
    s.compile();
    let other = Cache {
        dir: s.cache.dir.clone(),
        crate_dir: s.root.join("slot-1"),
    };
    std::fs::create_dir_all(other.crate_dir.join("src")).unwrap();
    std::fs::write(other.crate_dir.join("src/lib.rs"), "fn main() {}").unwrap();
    let args: Vec<OsString> = s
        .args()
        .iter()
        .map(|a| {
            let a = a.to_str().unwrap();
            a.replace(
                s.cache.crate_dir.to_str().unwrap(),
                other.crate_dir.to_str().unwrap(),
            )
            .into()
        })
        .collect();
    let plan = other.plan(&s.rustc, &args, &other.crate_dir).unwrap();
    let mut err = Vec::new();
    assert_eq!(
        other.compile(&plan, &s.rustc, &args, &mut Vec::new(), &mut err),
        0
    );
    assert_eq!(s.runs(), 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains(&format!(
        "{}/target/debug/deps/libctx.so",
        other.crate_dir.display()
    )));
    assert!(!err.contains("slot-0"));
    let dep_info =
        std::fs::read_to_string(other.crate_dir.join("target/debug/deps/ctx.d")).unwrap();
    assert!(dep_info.contains("slot-1") && !dep_info.contains("slot-0"));
}

#[test]
fn a_restored_library_does_not_overwrite_a_hard_link_to_the_old_one() {
    let s = Setup::new();
    s.compile();
    let loaded = s.cache.crate_dir.join("libcode_1.so");
    std::fs::hard_link(s.out_dir().join("libctx.so"), &loaded).unwrap();
    s.write_source("fn other() {}");
    s.compile();
    s.write_source("fn main() {}");
    s.compile();
    assert_eq!(s.runs(), 2);
    assert_eq!(std::fs::read_to_string(&loaded).unwrap(), "fn main() {}");
    std::fs::remove_file(&loaded).unwrap();
    std::fs::hard_link(s.out_dir().join("libctx.so"), &loaded).unwrap();
    s.write_source("fn other() {}");
    s.compile();
    assert_eq!(s.runs(), 2, "served from the cache");
    assert_eq!(std::fs::read_to_string(&loaded).unwrap(), "fn main() {}");
}

#[test]
fn other_compiles_are_not_cached() {
    let s = Setup::new();
    let args = s.args();
    let cwd = &s.cache.crate_dir;
    assert!(
        s.cache.plan(&s.rustc, &args, &s.root).is_none(),
        "not in the slot"
    );
    let mut other_crate = args.clone();
    other_crate[1] = "serde".into();
    assert!(s.cache.plan(&s.rustc, &other_crate, cwd).is_none());
    let mut native = args.clone();
    native.extend(["-l".into(), "ssl".into()]);
    assert!(s.cache.plan(&s.rustc, &native, cwd).is_none());
    let mut native_dir = args.clone();
    native_dir.extend(["-L".into(), "native=/usr/lib".into()]);
    assert!(s.cache.plan(&s.rustc, &native_dir, cwd).is_none());
    let no_json: Vec<OsString> = args
        .iter()
        .filter(|a| !a.to_str().unwrap().starts_with("--json"))
        .cloned()
        .collect();
    assert!(s.cache.plan(&s.rustc, &no_json, cwd).is_none());
    assert!(s.cache.plan(&s.rustc, &args, cwd).is_some());
}

#[test]
fn an_extern_library_is_part_of_the_key() {
    let s = Setup::new();
    let lib = s.root.join("libdep.rlib");
    std::fs::write(&lib, "v1").unwrap();
    let mut args = s.args();
    args.extend(["--extern".into(), format!("dep={}", lib.display()).into()]);
    let key = |args: &[OsString]| {
        s.cache
            .plan(&s.rustc, args, &s.cache.crate_dir)
            .unwrap()
            .key
    };
    let before = key(&args);
    std::fs::write(&lib, "v2 is longer").unwrap();
    assert_ne!(before, key(&args));
}

#[test]
fn paths_that_need_escaping_are_refused() {
    assert!(plain_path(Path::new(
        "/home/ann/.cache/slurmbook/evcxr/slot-0"
    )));
    assert!(!plain_path(Path::new("/home/ann b/.cache")));
    assert!(!plain_path(Path::new("relative/dir")));
    assert!(!plain_path(Path::new("/tmp/quo\"te")));
}

#[test]
fn dep_info_may_name_the_source_only() {
    let sources = vec!["src/lib.rs".to_string()];
    let ok = b"/s/deps/ctx.d: src/lib.rs\n\n/s/deps/libctx.so: src/lib.rs\n\nsrc/lib.rs:\n";
    assert!(dep_info_reads_only(ok, &sources));
    let other = b"/s/deps/ctx.d: src/lib.rs /data/x.txt\n\nsrc/lib.rs:\n/data/x.txt:\n";
    assert!(!dep_info_reads_only(other, &sources));
    let env = b"/s/deps/ctx.d: src/lib.rs\n\nsrc/lib.rs:\n\n# env-dep:HOME=/root\n";
    assert!(!dep_info_reads_only(env, &sources));
}

#[test]
fn eviction_keeps_the_most_recently_used_entries() {
    let s = Setup::new();
    let dir = &s.cache.dir;
    for i in 0..10u64 {
        let entry = dir.join(format!("k{i}"));
        std::fs::create_dir_all(&entry).unwrap();
        let status = std::fs::File::create(entry.join("status")).unwrap();
        status
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i))
            .unwrap();
    }
    evict(dir, 8);
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["k4", "k5", "k6", "k7", "k8", "k9"]);
}
