//! The one HTTP server over TLS on a real loopback socket, with certificates made by a test CA:
//! https served with Strict-Transport-Security, plain HTTP on the same port sent on to https
//! (at the host asked for only if it is ours), a certificate replaced on disk served from the
//! next connection on, a bad replacement leaving the old one in service, and a key that does
//! not go with its certificate refused at start naming the files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cluster::config::TlsFiles;
use floor::serve::{serve_tls, Limits};
use floor::tls::{ServerTls, TlsError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::timeout;
use warp::Filter;

/// How long a test waits for something that must happen before it calls it a failure.
const PATIENCE: Duration = Duration::from_secs(30);

struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for 127.0.0.1 signed by `ca`: its PEM chain, its key's PEM and its DER.
fn leaf(ca: &Ca) -> (String, String, CertificateDer<'static>) {
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Writes a file as a deployment tool would: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        timeout(PATIENCE, &mut self.done)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.done.abort();
    }
}

fn start(files: TlsFiles, host: &str) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTls::load(files, vec![host.to_string(), addr.to_string()]).unwrap();
    let routes = warp::path!("hello").map(|| "hello".to_string());
    let routes = routes
        .recover(|_| async { Ok::<_, std::convert::Infallible>("not found".to_string()) })
        .unify();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve_tls(
        listener,
        routes,
        Limits::default(),
        Some(tls),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

/// One `GET /hello` over TLS trusting `ca` only: the answer's text and the certificate the
/// server showed.
async fn get_tls(addr: SocketAddr, ca: &Ca) -> (String, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let shown = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        tls.write_all(
            format!("GET /hello HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        // A peer closing without close_notify is an error to rustls; the bytes are all here.
        let _ = tls.read_to_end(&mut answer).await;
        (String::from_utf8_lossy(&answer).into_owned(), shown)
    };
    timeout(PATIENCE, exchange).await.expect("an answer")
}

async fn get_plain(addr: SocketAddr, host: &str, target: &str) -> String {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    timeout(PATIENCE, exchange).await.expect("an answer")
}

fn pair(dir: &Path, ca: &Ca) -> (TlsFiles, CertificateDer<'static>) {
    let (cert, key, der) = leaf(ca);
    let files = TlsFiles {
        cert: dir.join("host.pem"),
        key: dir.join("host.key"),
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    (files, der)
}

#[tokio::test]
async fn https_is_served_and_plain_http_is_sent_on_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let (files, der) = pair(dir.path(), &ca);
    let server = start(files, "images.example:8443");
    let (answer, shown) = get_tls(server.addr, &ca).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
    assert_eq!(shown, der);

    // A host of ours is kept; any other is replaced by our first name.
    let ours = server.addr.to_string();
    let answer = get_plain(server.addr, &ours, "/iiif/3/fuji/info.json?a=1").await;
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!(
            "location: https://{ours}/iiif/3/fuji/info.json?a=1\r\n"
        )),
        "{answer}"
    );
    assert!(!answer.to_ascii_lowercase().contains("strict-transport"));
    let answer = get_plain(server.addr, "evil.example", "/view/fuji").await;
    assert!(
        answer.contains("location: https://images.example:8443/view/fuji\r\n"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let (files, first) = pair(dir.path(), &ca);
    let server = start(files.clone(), "127.0.0.1");
    assert_eq!(get_tls(server.addr, &ca).await.1, first);

    // Renewed: a new key and certificate, each renamed into place.
    let (cert, key, second) = leaf(&ca);
    replace(&files.key, &key);
    replace(&files.cert, &cert);
    let (answer, shown) = get_tls(server.addr, &ca).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(shown, second, "the new certificate on the next connection");

    // A certificate whose key is not the one beside it, then a file that is not PEM: the
    // renewed pair stays in service.
    let (other, _, _) = leaf(&ca);
    replace(&files.cert, &other);
    let (answer, shown) = get_tls(server.addr, &ca).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(shown, second, "a mismatched pair is not served");
    replace(&files.cert, "not a certificate");
    assert_eq!(get_tls(server.addr, &ca).await.1, second);

    // Renewed again, properly: served.
    let (cert, key, third) = leaf(&ca);
    replace(&files.key, &key);
    replace(&files.cert, &cert);
    assert_eq!(get_tls(server.addr, &ca).await.1, third);
    server.stop().await;
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_at_start_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let (files, _) = pair(dir.path(), &ca);
    let (_, other_key, _) = leaf(&ca);
    std::fs::write(&files.key, other_key).unwrap();
    let err = ServerTls::load(files.clone(), vec![]).unwrap_err();
    assert!(matches!(err, TlsError::Pair { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&files.key.display().to_string()), "{text}");
    assert!(text.contains(&files.cert.display().to_string()), "{text}");

    let missing = TlsFiles {
        cert: dir.path().join("absent.pem"),
        key: files.key,
    };
    let err = ServerTls::load(missing, vec![]).unwrap_err().to_string();
    assert!(err.contains("absent.pem"), "{err}");
}
