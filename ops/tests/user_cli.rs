//! `td user` and `td secret` as an operator runs them: `--config` before or after the action,
//! the password from standard input, clear refusals.

mod common;

fn td(args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = common::td_with_input(args, stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn accounts_are_added_listed_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "name = \"t\"\n[[node]]\nname = \"n\"\naddress = \"127.0.0.1:1\"\npower_domain = \"A\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (code, out, err) = td(
        &["user", "add", "--config", c, "--password-stdin", "ada"],
        "a long password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("account ada saved"), "{out}");
    let (code, _, err) = td(
        &["user", "--config", c, "add", "--password-stdin", "bob"],
        "bob's password!\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = td(
        &["user", "add", "--config", c, "--password-stdin", "ada"],
        "another password\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("already an account 'ada'") && err.contains("--replace"),
        "{err}"
    );
    let (code, _, err) = td(
        &["user", "add", "--config", c, "--password-stdin", "carl"],
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 10 characters"), "{err}");
    let (code, _, err) = td(
        &["user", "add", "--config", c, "--password-stdin", "Carl!"],
        "a long password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("not a usable account name"), "{err}");
    let (code, _, err) = td(&["user", "add", "--config", c, "dora"], "");
    assert_eq!(code, 1);
    assert!(err.contains("--password-stdin"), "{err}");
    let (code, _, err) = td(&["user", "list"], "");
    assert_eq!(code, 1);
    assert!(err.contains("--config"), "{err}");
    let (_, out, _) = td(&["user", "list", "--config", c], "");
    assert_eq!(out, "ada\tcontent-provider\nbob\tcontent-provider\n");
    // Operators open the dashboard; a role can be given and changed, the password staying.
    let (code, out, err) = td(
        &[
            "user",
            "add",
            "--config",
            c,
            "--role",
            "operator",
            "--password-stdin",
            "olga",
        ],
        "an operator's password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("account olga saved") && out.contains("(operator)"),
        "{out}"
    );
    let (code, _, err) = td(&["user", "role", "--config", c, "bob", "operator"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = td(&["user", "role", "--config", c, "nobody", "operator"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no account 'nobody'"), "{err}");
    let (_, out, _) = td(&["user", "list", "--config", c], "");
    assert_eq!(
        out,
        "ada\tcontent-provider\nbob\toperator\nolga\toperator\n"
    );
    let (code, _, _) = td(&["user", "remove", "--config", c, "olga"], "");
    assert_eq!(code, 0);
    let (code, _, _) = td(&["user", "remove", "--config", c, "bob"], "");
    assert_eq!(code, 0);
    let (_, out, _) = td(&["user", "list", "--config", c], "");
    assert_eq!(out, "ada\tcontent-provider\n");
    // The file holds hashes only, readable by its owner alone.
    let text = std::fs::read_to_string(dir.path().join("users.json")).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("a long password"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("users.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // The secret: made once, kept after.
    let (code, out, _) = td(&["secret", "--config", c], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("made") && out.contains("cluster.secret"),
        "{out}"
    );
    let first = std::fs::read(dir.path().join("cluster.secret")).unwrap();
    let (_, out, _) = td(&["secret", "--config", c], "");
    assert!(out.contains("kept"), "{out}");
    assert_eq!(
        std::fs::read(dir.path().join("cluster.secret")).unwrap(),
        first
    );
}
