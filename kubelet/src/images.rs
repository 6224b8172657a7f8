//! Images without a registry: builds an OCI image archive (oci-layout, index.json, blobs)
//! from a local root filesystem, or from busybox-static alone (one static binary plus a
//! link per applet: a whole userland), and imports it into containerd's `k8s.io` namespace
//! with `ctr`, where the CRI plugin finds it by name.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, io};

/// What an I/O error while building an image was doing.
const LAYER: &str = "building the image layer";
const ARCHIVE: &str = "building the image archive";

/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// What the image runs and how it is named.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The full reference, e.g. "docker.io/library/busybox:latest".
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

impl ImageSpec {
    pub fn new(name: &str) -> ImageSpec {
        ImageSpec {
            name: name.to_owned(),
            entrypoint: Vec::new(),
            cmd: vec!["sh".into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends a directory entry (`path` without a trailing slash).
fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> crate::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    builder
        .append_data(&mut h, format!("{path}/"), std::io::empty())
        .map_err(io(LAYER))
}

/// The shared libraries (and the dynamic loader) in `ldd`'s output, as absolute paths.
fn linked_libraries(ldd: &str) -> Vec<&Path> {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
    ldd.lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with('/')))
        .map(Path::new)
        .collect()
}

/// Where [`program_layer`] puts a program: /usr/local/bin/<its file name>.
pub fn program_path(program: &Path) -> String {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    format!("/usr/local/bin/{name}")
}

/// A gzip tar layer holding one program at [`program_path`], the shared libraries `ldd`
/// lists for it at their own paths, and the directories a container needs (/etc, /tmp):
/// the smallest image a dynamically linked binary of ours runs from.
pub fn program_layer(program: &Path) -> crate::Result<Vec<u8>> {
    let ldd = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(io("running ldd (apt-get install libc-bin)"))?;
    // A static program has no libraries (ldd says so and fails).
    let ldd = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let dest = program_path(program);
    let mut files: Vec<(&Path, &str)> = vec![(program, dest.trim_start_matches('/'))];
    for lib in linked_libraries(&ldd) {
        files.push((
            lib,
            lib.to_str().unwrap_or_default().trim_start_matches('/'),
        ));
    }
    let mut dirs = std::collections::BTreeSet::from(["etc", "tmp"]);
    for (_, inside) in &files {
        let mut parent = Path::new(inside).parent();
        while let Some(p) = parent.and_then(Path::to_str).filter(|p| !p.is_empty()) {
            dirs.insert(p);
            parent = Path::new(p).parent();
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for dir in dirs {
        append_dir(&mut builder, dir, if dir == "tmp" { 0o1777 } else { 0o755 })?;
    }
    // Libraries are often links: the archive holds the files they name. Linkers leave
    // holes in binaries; plain entries keep every reader of the layer simple.
    builder.follow_symlinks(true);
    builder.sparse(false);
    for (host, inside) in files {
        builder
            .append_path_with_name(host, inside)
            .map_err(io(format!("reading {}", host.display())))?;
    }
    builder
        .into_inner()
        .and_then(|tar| gzip(&tar))
        .map_err(io(LAYER))
}

/// A gzip tar layer of busybox: /bin/busybox, a link per applet, and the usual directories.
pub fn busybox_layer() -> crate::Result<Vec<u8>> {
    let applets = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(io(format!(
            "running {BUSYBOX} --list (apt-get install busybox-static)"
        )))?;
    let applets = String::from_utf8(applets.stdout)
        .map_err(|e| Error::Invalid(format!("{BUSYBOX} --list: {e}")))?;
    let binary = std::fs::read(BUSYBOX).map_err(io(format!("reading {BUSYBOX}")))?;
    let mut builder = tar::Builder::new(Vec::new());
    for dir in [
        "bin", "dev", "etc", "proc", "root", "sys", "tmp", "var", "usr", "usr/bin", "sbin",
    ] {
        append_dir(&mut builder, dir, if dir == "tmp" { 0o1777 } else { 0o755 })?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(binary.len() as u64);
    builder
        .append_data(&mut h, "bin/busybox", binary.as_slice())
        .map_err(io(LAYER))?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        builder
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io(LAYER))?;
    }
    for (path, body) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        builder
            .append_data(&mut h, path, body.as_bytes())
            .map_err(io(LAYER))?;
    }
    builder
        .into_inner()
        .and_then(|tar| gzip(&tar))
        .map_err(io(LAYER))
}

/// A gzip tar layer of a directory tree.
pub fn directory_layer(root: &Path) -> crate::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", root)
        .map_err(io(format!("reading {}", root.display())))?;
    builder
        .into_inner()
        .and_then(|tar| gzip(&tar))
        .map_err(io(LAYER))
}

fn gzip(tar: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(tar)?;
    gz.finish()
}

fn uncompressed_digest(gz: &[u8]) -> std::io::Result<String> {
    let mut raw = Vec::new();
    std::io::copy(&mut flate2::read::GzDecoder::new(gz), &mut raw)?;
    Ok(format!("sha256:{}", sha256_hex(&raw)))
}

/// An OCI image archive (what `ctr images import` reads) with one layer.
pub fn oci_archive(spec: &ImageSpec, layer_gz: &[u8]) -> crate::Result<Vec<u8>> {
    let layer_digest = sha256_hex(layer_gz);
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": spec.env, "Cmd": spec.cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [uncompressed_digest(layer_gz).map_err(io(LAYER))?]},
    });
    if !spec.entrypoint.is_empty() {
        config["config"]["Entrypoint"] = json!(spec.entrypoint);
    }
    let config = serde_json::to_vec(&config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{layer_digest}"), "size": layer_gz.len()}],
    }))?;
    let tag = spec.name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&manifest)),
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag},
        }],
    }))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        builder.append_data(&mut h, path, data)
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(ARCHIVE))?;
    add("index.json".into(), &index).map_err(io(ARCHIVE))?;
    for blob in [&config, &manifest, &layer_gz.to_vec()] {
        add(format!("blobs/sha256/{}", sha256_hex(blob)), blob).map_err(io(ARCHIVE))?;
    }
    builder.into_inner().map_err(io(ARCHIVE))
}

/// Imports an archive into containerd (namespace k8s.io, where CRI looks) with `ctr`.
pub fn import(containerd_socket: &Path, archive: &[u8]) -> crate::Result<()> {
    let file = tempfile::NamedTempFile::new()
        .and_then(|mut f| f.write_all(archive).and(f.flush()).map(|()| f))
        .map_err(io("writing the image archive to a temporary file"))?;
    let out = Command::new("ctr")
        .arg("--address")
        .arg(containerd_socket)
        .args(["-n", "k8s.io", "images", "import", "--all-platforms"])
        .arg(file.path())
        .output()
        .map_err(io("running ctr (apt-get install containerd)"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(io("ctr images import failed")(std::io::Error::other(
            stderr,
        )));
    }
    Ok(())
}

/// Builds `spec` from busybox-static and imports it.
pub fn import_busybox(containerd_socket: &Path, spec: &ImageSpec) -> crate::Result<()> {
    import(containerd_socket, &oci_archive(spec, &busybox_layer()?)?)
}

/// The flags of `images import`, shared by `kubelet images import` and `kubeadm images
/// import` (which differ only in how they find containerd's socket).
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The image reference pods will use, e.g. docker.io/library/busybox:latest.
    pub name: String,
    /// A directory to use as the image's root filesystem instead of busybox.
    #[arg(long, conflicts_with = "program")]
    pub rootfs: Option<std::path::PathBuf>,
    /// A program to build the image from instead of busybox: it goes to
    /// /usr/local/bin/<name> (the default entrypoint) with the libraries it links.
    #[arg(long)]
    pub program: Option<std::path::PathBuf>,
    /// The image's entrypoint, as a comma-separated list.
    #[arg(long, value_delimiter = ',')]
    pub entrypoint: Vec<String>,
    /// The image's default command, as a comma-separated list (default: sh).
    #[arg(long, value_delimiter = ',')]
    pub cmd: Vec<String>,
}

impl ImportArgs {
    /// Builds the image and imports it into the containerd at `socket`.
    pub fn run(self, socket: &Path) -> crate::Result<()> {
        let source = match (self.rootfs, self.program) {
            (Some(dir), _) => Source::Rootfs(dir),
            (None, Some(program)) => Source::Program(program),
            (None, None) => Source::Busybox,
        };
        build_and_import(socket, &self.name, &source, self.entrypoint, self.cmd)
    }
}

/// What an image's one layer is built from.
#[derive(Clone, Debug)]
pub enum Source {
    /// busybox-static: a whole userland.
    Busybox,
    /// A directory tree.
    Rootfs(std::path::PathBuf),
    /// One program and the libraries it links ([`program_layer`]).
    Program(std::path::PathBuf),
}

/// Builds image `name` from `source` with the given entrypoint (a program's own path when
/// empty) and default command (busybox's `sh` when empty), and imports it.
pub fn build_and_import(
    containerd_socket: &Path,
    name: &str,
    source: &Source,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
) -> crate::Result<()> {
    let mut spec = ImageSpec::new(name);
    spec.entrypoint = entrypoint;
    let own_cmd = !cmd.is_empty();
    if own_cmd {
        spec.cmd = cmd;
    }
    let layer = match source {
        Source::Busybox => busybox_layer()?,
        Source::Rootfs(dir) => directory_layer(dir)?,
        Source::Program(program) => {
            if spec.entrypoint.is_empty() {
                spec.entrypoint = vec![program_path(program)];
            }
            if !own_cmd {
                spec.cmd = Vec::new();
            }
            program_layer(program)?
        }
    };
    eprintln!("building {name} ({} KiB layer)", layer.len() / 1024);
    import(containerd_socket, &oci_archive(&spec, &layer)?)?;
    eprintln!("imported {name} into {}", containerd_socket.display());
    Ok(())
}

/// The sandbox ("pause") image: busybox's sleep, forever.
pub fn pause(name: &str) -> ImageSpec {
    let mut spec = ImageSpec::new(name);
    spec.entrypoint = vec!["/bin/sleep".into(), "2147483647".into()];
    spec.cmd = Vec::new();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_hold_a_layout_an_index_and_content_addressed_blobs() {
        let layer = gzip(b"not really a tar").unwrap();
        let archive = oci_archive(&ImageSpec::new("example.com/x:1"), &layer).unwrap();
        let mut names = Vec::new();
        let mut index = None;
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut e = entry.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            std::io::copy(&mut e, &mut body).unwrap();
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(hex, sha256_hex(&body), "blob named by its digest");
            }
            if path == "index.json" {
                index = Some(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
            }
            names.push(path);
        }
        assert_eq!(names.len(), 5, "{names:?}");
        let index = index.unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "example.com/x:1"
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "1"
        );
    }

    #[test]
    fn a_program_layer_carries_the_program_its_libraries_and_their_directories() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            linked_libraries(ldd),
            [
                Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
                Path::new("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        // The test binary itself is a dynamically linked program of ours.
        let me = std::env::current_exe().unwrap();
        let layer = program_layer(&me).unwrap();
        let mut tar = Vec::new();
        std::io::copy(
            &mut flate2::read::GzDecoder::new(layer.as_slice()),
            &mut tar,
        )
        .unwrap();
        let mut entries = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
            let e = entry.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            entries.insert(path, (e.header().entry_type(), e.header().size().unwrap()));
        }
        let inside = program_path(&me).trim_start_matches('/').to_owned();
        assert_eq!(
            entries[&inside],
            (tar::EntryType::Regular, me.metadata().unwrap().len())
        );
        for dir in [
            "etc/",
            "tmp/",
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "lib64/",
        ] {
            assert_eq!(entries[dir].0, tar::EntryType::Directory, "{dir}");
        }
        // libc is archived as a file even where the host has it as a link.
        let libc = entries
            .iter()
            .find(|(p, _)| p.contains("libc.so"))
            .expect("libc in the layer");
        assert_eq!(libc.1.0, tar::EntryType::Regular);
        assert!(libc.1.1 > 100_000, "{libc:?}");
    }
}
