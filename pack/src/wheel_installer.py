# slurmbook's wheel installer (see pypi.rs): python wheel_installer.py W.whl...
import base64, configparser, csv, hashlib, io, os, sys, sysconfig, zipfile

def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def install(path):
    paths = sysconfig.get_paths()
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith(".dist-info/WHEEL"))
        wheel = z.read(info + "/WHEEL").decode()
        pure = any(l.strip().lower() == "root-is-purelib: true" for l in wheel.splitlines())
        root = paths["purelib"] if pure else paths["platlib"]
        data = info[: -len(".dist-info")] + ".data/"
        bases = {"purelib": paths["purelib"], "platlib": paths["platlib"], "scripts": paths["scripts"],
                 "data": paths["data"], "headers": paths["include"]}
        records = []
        for entry in z.infolist():
            if entry.is_dir():
                continue
            name = entry.filename
            if name.startswith(data):
                key, rest = name[len(data):].split("/", 1)
                dest = os.path.join(bases[key], rest)
            else:
                key, dest = None, os.path.join(root, name)
            dest = os.path.normpath(dest)
            if ".." in os.path.relpath(dest, sys.prefix).split(os.sep):
                raise SystemExit("%s: %s leaves the prefix" % (path, name))
            content = z.read(entry)
            if key == "scripts" and content.startswith(b"#!python"):
                content = b"#!" + sys.executable.encode() + content[len(b"#!python"):]
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(content)
            if key == "scripts" or (entry.external_attr >> 16) & 0o111:
                os.chmod(dest, 0o755)
            records.append((dest, content))
        eps = info + "/entry_points.txt"
        if eps in names:
            cp = configparser.ConfigParser(delimiters="=")
            cp.optionxform = str
            cp.read_string(z.read(eps).decode())
            for script, target in (cp.items("console_scripts") if cp.has_section("console_scripts") else []):
                module, func = target.split(":")
                func = func.split("[")[0].strip()
                text = ("#!%s\nimport sys\nfrom %s import %s\nsys.exit(%s())\n"
                        % (sys.executable, module.strip(), func.split(".")[0], func)).encode()
                dest = os.path.join(paths["scripts"], script.strip())
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as f:
                    f.write(text)
                os.chmod(dest, 0o755)
                records.append((dest, text))
    info_dir = os.path.join(root, info)
    with open(os.path.join(info_dir, "INSTALLER"), "w") as f:
        f.write("slurmbook\n")
    out = io.StringIO()
    w = csv.writer(out)
    for dest, content in records:
        w.writerow([os.path.relpath(dest, root), record_hash(content), len(content)])
    w.writerow([os.path.relpath(os.path.join(info_dir, "RECORD"), root), "", ""])
    with open(os.path.join(info_dir, "RECORD"), "w") as f:
        f.write(out.getvalue())

for wheel in sys.argv[1:]:
    install(wheel)
