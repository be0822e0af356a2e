//! libpq connection strings, as a 4.2 engine's `source.connectionString` holds them: read
//! to tell which server a dump would really read, and rewritten to point at the clone
//! while keeping the admin's TLS and other libpq options.
//!
//! Both forms libpq accepts: `postgresql://user@host:port/db?sslmode=require` and
//! `host=... port=... sslmode=require` (values may be single-quoted, `\` escapes).

use std::fmt::Write;

/// The parts that say where and as whom to connect; the clone's values replace them.
const ADDRESSING: &[&str] = &["host", "hostaddr", "port", "dbname", "user", "password"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    Uri,
    KeyValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnString {
    pub form: Form,
    /// In the order written; URI parts are named as their key/value equivalents.
    pub params: Vec<(String, String)>,
}

impl ConnString {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("postgresql://") || text.starts_with("postgres://") {
            parse_uri(text)
        } else {
            parse_key_value(text)
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Options beyond where and as whom (sslmode, sslrootcert, application_name...).
    pub fn options(&self) -> impl Iterator<Item = &(String, String)> {
        self.params.iter().filter(|(k, _)| !ADDRESSING.contains(&k.as_str()))
    }

    /// The hosts it names: more than one means libpq may pick any of them.
    pub fn hosts(&self) -> Vec<&str> {
        self.get("host").map(|h| h.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    /// The same options, addressed to `host:port/dbname` as `user`, with no password.
    pub(crate) fn readdressed(&self, host: &str, port: u16, dbname: &str, user: &str) -> Self {
        let mut params: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("port".into(), port.to_string()),
            ("dbname".into(), dbname.into()),
            ("user".into(), user.into()),
        ];
        params.extend(self.options().cloned());
        Self { form: self.form.clone(), params }
    }

    pub fn render(&self) -> String {
        match self.form {
            Form::KeyValue => {
                let parts: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
                parts.join(" ")
            }
            Form::Uri => {
                let mut out = String::from("postgresql://");
                if let Some(user) = self.get("user") {
                    out.push_str(&encode(user));
                    out.push('@');
                }
                if let Some(host) = self.get("host") {
                    // An IPv6 address is written in brackets.
                    if host.contains(':') {
                        let _ = write!(out, "[{host}]");
                    } else {
                        out.push_str(&encode(host));
                    }
                }
                if let Some(port) = self.get("port") {
                    let _ = write!(out, ":{port}");
                }
                out.push('/');
                if let Some(db) = self.get("dbname") {
                    out.push_str(&encode(db));
                }
                let query: Vec<String> = self
                    .params
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "user" | "host" | "port" | "dbname"))
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                if !query.is_empty() {
                    out.push('?');
                    out.push_str(&query.join("&"));
                }
                out
            }
        }
    }
}

fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\', '=']) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "an escape that is not UTF-8".to_string())
}

fn parse_uri(text: &str) -> Result<ConnString, String> {
    let rest = text.split_once("://").map_or("", |(_, r)| r);
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let mut params = Vec::new();
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = userinfo.split_once(':').map_or((userinfo, None), |(u, p)| (u, Some(p)));
            if !user.is_empty() {
                params.push(("user".to_string(), decode(user)?));
            }
            if let Some(p) = password {
                params.push(("password".to_string(), decode(p)?));
            }
            hosts
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for spec in hostspec.split(',').filter(|s| !s.is_empty()) {
        let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("an unclosed [ in the host")?;
            (h.to_string(), after.strip_prefix(':').map(str::to_string))
        } else {
            match spec.rsplit_once(':') {
                Some((h, p)) => (decode(h)?, Some(p.to_string())),
                None => (decode(spec)?, None),
            }
        };
        hosts.push(host);
        if let Some(p) = port {
            ports.push(p);
        }
    }
    if !hosts.is_empty() {
        params.push(("host".to_string(), hosts.join(",")));
    }
    if !ports.is_empty() {
        params.push(("port".to_string(), ports.join(",")));
    }
    if !path.is_empty() {
        params.push(("dbname".to_string(), decode(path)?));
    }
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("the URI parameter {pair:?} has no value"))?;
        params.push((decode(k)?, decode(v)?));
    }
    for (_, port) in params.iter().filter(|(k, _)| k == "port") {
        check_ports(port)?;
    }
    Ok(ConnString { form: Form::Uri, params })
}

fn check_ports(ports: &str) -> Result<(), String> {
    for p in ports.split(',').filter(|p| !p.is_empty()) {
        p.parse::<u16>().map_err(|_| format!("the port {p:?} is not a number"))?;
    }
    Ok(())
}

fn parse_key_value(text: &str) -> Result<ConnString, String> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("{key:?} is not followed by \"=\""));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the value of {key} has no closing quote")),
                    Some('\'') => break,
                    Some('\\') => value.push(chars.next().ok_or("a trailing backslash")?),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or("a trailing backslash")?);
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err("a parameter without a name".into());
        }
        if key == "port" {
            check_ports(&value)?;
        }
        params.push((key, value));
    }
    Ok(ConnString { form: Form::KeyValue, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_is_read_part_by_part() {
        let c = ConnString::parse("postgresql://app%40x:s3cret@prod.abc.rds.amazonaws.com:5433/orders?sslmode=verify-full&sslrootcert=%2Fcerts%2Frds.pem").unwrap();
        assert_eq!(c.get("user"), Some("app@x"));
        assert_eq!(c.get("password"), Some("s3cret"));
        assert_eq!(c.hosts(), ["prod.abc.rds.amazonaws.com"]);
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("dbname"), Some("orders"));
        assert_eq!(c.get("sslrootcert"), Some("/certs/rds.pem"));
        let options: Vec<&str> = c.options().map(|(k, _)| k.as_str()).collect();
        assert_eq!(options, ["sslmode", "sslrootcert"]);
    }

    #[test]
    fn key_value_with_quotes_and_escapes() {
        let c = ConnString::parse(
            "host=prod port = 5432 dbname='my db' user=dblab sslmode=require application_name='it\\'s'",
        )
        .unwrap();
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.get("application_name"), Some("it's"));
        assert_eq!(c.get("port"), Some("5432"));
    }

    #[test]
    fn readdressing_keeps_the_options_and_drops_the_password() {
        for text in [
            "postgresql://admin:pw@prod:5432/app?sslmode=require&sslrootcert=%2Fetc%2Frds.pem",
            "host=prod hostaddr=10.0.0.1 port=5432 user=admin password=pw dbname=app sslmode=require sslrootcert=/etc/rds.pem",
        ] {
            let old = ConnString::parse(text).unwrap();
            let new = old.readdressed("clone.local", 6543, "app", "dblab");
            let again = ConnString::parse(&new.render()).unwrap();
            assert_eq!(again.form, old.form);
            assert_eq!(again.hosts(), ["clone.local"]);
            assert_eq!(again.get("port"), Some("6543"));
            assert_eq!((again.get("dbname"), again.get("user")), (Some("app"), Some("dblab")));
            assert_eq!(again.get("password"), None, "{}", new.render());
            assert_eq!(again.get("hostaddr"), None);
            assert_eq!(again.get("sslmode"), Some("require"));
            assert_eq!(again.get("sslrootcert"), Some("/etc/rds.pem"));
        }
    }

    #[test]
    fn several_hosts_are_all_seen() {
        let c = ConnString::parse("postgresql://a:1,b:2/app").unwrap();
        assert_eq!(c.hosts(), ["a", "b"]);
        assert_eq!(ConnString::parse("host=a,b").unwrap().hosts(), ["a", "b"]);
    }

    #[test]
    fn unreadable_strings_are_refused() {
        for bad in ["host", "host='open", "postgresql://h:notaport/db", "port=x", "postgresql://h/db?novalue"] {
            assert!(ConnString::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_value_values_are_quoted_only_when_they_must_be() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("my db"), "'my db'");
        assert_eq!(quote("it's"), "'it\\'s'");
        assert_eq!(quote("a\\b"), "'a\\\\b'");
        assert_eq!(quote("k=v"), "'k=v'");
    }

    #[test]
    fn percent_escapes_are_decoded_anywhere_and_bad_ones_refused() {
        assert_eq!(decode("%41b%2Fc%40").unwrap(), "Ab/c@");
        assert_eq!(decode("plain").unwrap(), "plain");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(decode("a%4").unwrap_err().contains("truncated"));
        assert!(decode("%zz").unwrap_err().contains("bad %-escape"));
        assert!(decode("%FF").unwrap_err().contains("not UTF-8"));
    }
}
