//! Mints tokens from the EXAMPLE keys in `envoy/keys/` (test-only keys, never use them in
//! production), for trying the filter by hand with curl.
//!
//! ```text
//! cargo run -q --example mint -- logout --sid S --sub U        # a logout token
//! cargo run -q --example mint -- id-token --sid S --sub U      # an IdToken cookie value
//! cargo run -q --example mint -- jwks                          # the public JWKS
//! cargo run -q --example mint -- genkeys --force               # new example keys + jwks.json
//! ```
//! Options: `--alg rs256|es256|eddsa` (default rs256), `--iss URL` (default
//! https://idp.example.test), `--aud ID` (default example-app), `--typ T` (logout header typ,
//! default logout+jwt), `--iat SECONDS` (default now), `--ttl SECONDS` (exp - iat, default 120).

// A developer tool sharing the tests' signer: the crate's no-panic lints guard request paths
// in src/, not this.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/jws.rs"]
mod jws;

use std::process::ExitCode;

use jws::{Alg, ExampleKeys};
use jwt_simple::prelude::{ES256KeyPair, Ed25519KeyPair, RS256KeyPair};
use serde_json::json;

const USAGE: &str = "usage: mint logout|id-token [--sid S] [--sub U] [--alg rs256|es256|eddsa] \
[--iss URL] [--aud ID] [--typ T] [--iat SECONDS] [--ttl SECONDS]\n       mint jwks\n       \
mint genkeys [--force]";

struct Opts {
    sid: Option<String>,
    sub: Option<String>,
    alg: Alg,
    iss: String,
    aud: String,
    typ: String,
    iat: i64,
    ttl: i64,
    force: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        sid: None,
        sub: None,
        alg: Alg::Rs256,
        iss: jws::ISSUER.to_string(),
        aud: jws::CLIENT_ID.to_string(),
        typ: "logout+jwt".to_string(),
        iat: jws::now(),
        ttl: 120,
        force: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--force" {
            o.force = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--sid" => o.sid = Some(value.clone()),
            "--sub" => o.sub = Some(value.clone()),
            "--alg" => o.alg = Alg::parse(&value).ok_or_else(|| format!("unknown alg {value}"))?,
            "--iss" => o.iss = value.clone(),
            "--aud" => o.aud = value.clone(),
            "--typ" => o.typ = value.clone(),
            "--iat" => o.iat = number()?,
            "--ttl" => o.ttl = number()?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn logout(keys: &ExampleKeys, o: &Opts) -> Result<String, String> {
    if o.sid.is_none() && o.sub.is_none() {
        return Err("logout needs --sid and/or --sub".into());
    }
    let mut claims = json!({
        "iss": o.iss, "aud": o.aud, "iat": o.iat, "exp": o.iat + o.ttl,
        "jti": jws::unique_id("jti-"),
        "events": {jws::BCL_EVENT: {}},
    });
    if let Some(sid) = &o.sid {
        claims["sid"] = json!(sid);
    }
    if let Some(sub) = &o.sub {
        claims["sub"] = json!(sub);
    }
    let typ = (!o.typ.is_empty()).then_some(o.typ.as_str());
    Ok(keys.sign_json(o.alg, &jws::header(o.alg, typ), &claims))
}

fn id_token(keys: &ExampleKeys, o: &Opts) -> Result<String, String> {
    let (Some(sid), Some(sub)) = (&o.sid, &o.sub) else {
        return Err("id-token needs --sid and --sub".into());
    };
    let mut claims = jws::id_token_claims(sid, sub, o.iat);
    claims["iss"] = json!(o.iss);
    claims["aud"] = json!(o.aud);
    Ok(keys.sign_json(o.alg, &jws::header(o.alg, Some("JWT")), &claims))
}

/// Generates new example keys with jwt-simple and writes them with `jwks.json`.
fn genkeys(force: bool) -> Result<String, String> {
    let dir = jws::keys_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if !force && dir.join(Alg::Rs256.file()).exists() {
        return Err(format!(
            "{} already holds keys; pass --force to replace them",
            dir.display()
        ));
    }
    let rsa = RS256KeyPair::generate(2048)
        .and_then(|k| k.to_pem())
        .map_err(|e| e.to_string())?;
    let ec = ES256KeyPair::generate()
        .to_pem()
        .map_err(|e| e.to_string())?;
    let ed = Ed25519KeyPair::generate().to_pem();
    for (alg, pem) in [(Alg::Rs256, rsa), (Alg::Es256, ec), (Alg::EdDsa, ed)] {
        std::fs::write(dir.join(alg.file()), pem).map_err(|e| e.to_string())?;
    }
    let keys = ExampleKeys::load()?;
    let jwks = serde_json::to_string_pretty(&keys.jwks()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("jwks.json"), format!("{jwks}\n")).map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote example keys and jwks.json to {}",
        dir.display()
    ))
}

fn run(args: &[String]) -> Result<String, String> {
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    let opts = parse(rest)?;
    match cmd.as_str() {
        "genkeys" => genkeys(opts.force),
        "logout" => logout(&ExampleKeys::load()?, &opts),
        "id-token" => id_token(&ExampleKeys::load()?, &opts),
        "jwks" => serde_json::to_string(&ExampleKeys::load()?.jwks()).map_err(|e| e.to_string()),
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint: {e}");
            ExitCode::FAILURE
        }
    }
}
