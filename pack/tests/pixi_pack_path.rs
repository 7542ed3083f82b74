//! `pack` uses `pixi-pack` when it is on PATH, and `unpack` installs a
//! pixi-pack archive (`pixi-pack.json` + `channel/`). The real pixi-pack is
//! not installed here: a stand-in script on PATH records its arguments and
//! writes a pixi-pack-layout archive, so this checks slurmbook's side only.
//! (One test in this file: it changes PATH for the whole process.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use slurmbook_pack::{
    activation_script_path, pack, pack_native, unpack, PackedWith, MANIFEST_NAME,
};

#[test]
fn pack_uses_pixi_pack_on_path_and_unpack_installs_its_archive() {
    let fx = fixture();

    // A pixi-pack-layout tree, made from a native archive.
    let native = pack_native(
        &fx.project,
        "default",
        &fx.platform,
        &fx.root.join("native"),
    )
    .unwrap();
    let tree = fx.root.join("pixi-pack-tree");
    std::fs::create_dir_all(&tree).unwrap();
    tar::Archive::new(std::fs::File::open(&native.archive).unwrap())
        .unpack(&tree)
        .unwrap();
    std::fs::remove_file(tree.join(MANIFEST_NAME)).unwrap();
    std::fs::write(
        tree.join("pixi-pack.json"),
        format!("{{\"version\": \"1\", \"platform\": \"{}\"}}", fx.platform),
    )
    .unwrap();

    let bin = fx.root.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let args_file = fx.root.join("pixi-pack-args");
    let script = bin.join("pixi-pack");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --help ]; then echo 'Usage: pixi-pack [OPTIONS] [MANIFEST_PATH]'; exit 0; fi\n\
             echo \"$@\" > '{args}'\n\
             out=''\n\
             while [ $# -gt 0 ]; do if [ \"$1\" = --output-file ]; then out=\"$2\"; shift; fi; shift; done\n\
             tar -cf \"$out\" -C '{tree}' .\n",
            args = args_file.display(),
            tree = tree.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    // Changing PATH is racy only with other threads; this is the only test here.
    std::env::set_var("PATH", std::env::join_paths(dirs).unwrap());

    let report = pack(&fx.project, "default", &fx.platform, &fx.root.join("out")).unwrap();
    assert_eq!(report.packed_with, PackedWith::PixiPack);
    assert_eq!(report.packages, 3);
    assert_eq!(report.key, native.key);
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(
        args.starts_with(&format!(
            "{} --environment default --platform {} --output-file ",
            fx.project.manifest.display(),
            fx.platform
        )),
        "{args}"
    );

    let prefix = fx.root.join("remote/envs").join(&report.key);
    let unpacked = unpack(&report.archive, &prefix).unwrap();
    assert!(!unpacked.already);
    assert_eq!(unpacked.packages, 3);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". '{}' && hello-tool && greet",
            activation_script_path(&prefix).display()
        ))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello from libgreet"), "{stdout}");
}
