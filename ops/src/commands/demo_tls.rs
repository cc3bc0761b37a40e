//! `td demo --tls`: a certificate authority of the demo's own and a certificate per host signed
//! by it, in `DATA/tls/`. The CA is made at the first run and kept (a browser told to trust it
//! goes on trusting it); the hosts' certificates are made again at every start, as the
//! addresses may change.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The folder under the data folder, as `cluster.toml` names it.
pub const FOLDER: &str = "tls";
/// The CA's certificate, under [`FOLDER`].
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";

/// The certificate and key files of `host`, relative to the data folder.
pub fn host_files(host: &str) -> (String, String) {
    (
        format!("{FOLDER}/{host}.pem"),
        format!("{FOLDER}/{host}.key"),
    )
}

/// Makes (or keeps) the CA and a certificate for each of `hosts`, every one naming
/// `localhost` and `ip`; returns the CA's certificate file.
pub fn make(data: &Path, hosts: &[&str], ip: IpAddr) -> Result<PathBuf> {
    let dir = data.join(FOLDER);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let issuer = ca(&dir)?;
    for host in hosts {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), ip.to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("td demo {host}"));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_file, key_file) = host_files(host);
        write(&data.join(key_file), &key.serialize_pem(), 0o600)?;
        write(&data.join(cert_file), &cert.pem(), 0o644)?;
    }
    Ok(dir.join(CA_FILE))
}

/// The demo's CA: its key read back if made before (the parameters are the same every time, so
/// what it signs names the same issuer), else made now.
fn ca(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let (cert_path, key_path) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Tertiary Disk demo CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    if cert_path.is_file() {
        if let Ok(key) = std::fs::read_to_string(&key_path) {
            let key = KeyPair::from_pem(&key)
                .with_context(|| format!("{} is not a private key", key_path.display()))?;
            return Ok(Issuer::new(params, key));
        }
    }
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&key_path, &key.serialize_pem(), 0o600)?;
    write(&cert_path, &cert.pem(), 0o644)?;
    Ok(Issuer::new(params, key))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How to make curl and the browsers trust the demo's CA.
pub fn how_to_trust(ca: &Path, canonical: &str) -> String {
    let ca = ca.display();
    format!(
        "TLS: every address speaks https with certificates signed by the demo's own CA, {ca}.\n\
         \x20 curl:     curl --cacert {ca} https://{canonical}/\n\
         \x20 Chromium: Settings > Privacy and security > Security > Manage certificates > \
         Authorities > Import {ca} (trust it for websites), or\n\
         \x20           certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n td-demo -i {ca}\n\
         \x20 Firefox:  Settings > Privacy & Security > Certificates > View Certificates > \
         Authorities > Import {ca} (trust it to identify websites)."
    )
}
