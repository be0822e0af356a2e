//! The DBLab Engines a stack may drive: its `DblabEngines` parameter, not the request.
//! Whoever can start an execution or edit a schedule could otherwise name any address with
//! any token secret the stack may read, and the token and the source password would go
//! there. A request names one engine of this list (by name or by address); the endpoint,
//! the token secret and whether plain HTTP or an unverified certificate is allowed come
//! from the list, and the request is refused before any secret is read otherwise.

use std::fmt;

use crate::RefreshError;
use crate::error::{FieldError, ValidationErrors};
use crate::request::{DblabSpec, Labels, RefreshRequest};

/// One engine of the stack's list. Built only by [`EngineList::parse`]: a client can only
/// be pointed at an engine the stack lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    name: String,
    endpoint: String,
    token_secret_arn: String,
    plaintext: bool,
    insecure: bool,
}

impl Engine {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn token_secret_arn(&self) -> &str {
        &self.token_secret_arn
    }

    /// Reached over plain `http://`: the token and the password cross the network in clear.
    pub fn plaintext(&self) -> bool {
        self.plaintext
    }

    /// Its certificate is not verified.
    pub fn insecure(&self) -> bool {
        self.insecure
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.endpoint)
    }
}

/// The stack's engines, in the order the parameter gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineList(Vec<Engine>);

const PLAINTEXT: &str = "plaintext";
const INSECURE: &str = "insecure";

impl EngineList {
    /// Reads the list: entries separated by commas (a CloudFormation `CommaDelimitedList`),
    /// each `NAME ENDPOINT TOKEN_SECRET_ARN [plaintext] [insecure]`. An `http://` endpoint
    /// must say `plaintext`; `insecure` is for `https://` only. Names and addresses are
    /// unique. Every problem is reported, naming its entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut engines: Vec<Engine> = Vec::new();
        let mut problems = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate().filter(|(_, e)| !e.is_empty()) {
            match parse_entry(entry) {
                Ok(engine) => {
                    if engines.iter().any(|e| e.name == engine.name) {
                        problems.push(format!("entry {}: the name {:?} is given twice", index + 1, engine.name));
                    } else if let Some(twin) = engines.iter().find(|e| same_address(&e.endpoint, &engine.endpoint)) {
                        problems.push(format!(
                            "entry {}: {} is {}'s address too; a request naming it would be ambiguous",
                            index + 1,
                            engine.endpoint,
                            twin.name
                        ));
                    } else {
                        engines.push(engine);
                    }
                }
                Err(problem) => problems.push(format!("entry {} ({entry:?}): {problem}", index + 1)),
            }
        }
        if problems.is_empty() { Ok(Self(engines)) } else { Err(problems.join("; ")) }
    }

    pub fn engines(&self) -> &[Engine] {
        &self.0
    }

    /// The engine a request names, or the request refused: every problem with its field
    /// and the list. Also refuses a source password that is one of the engines' tokens
    /// (it would be sent to the engine as the database password).
    pub fn resolve(&self, request: &RefreshRequest) -> Result<&Engine, RefreshError> {
        let mut problems = Vec::new();
        let engine = self.named(&request.dblab, &mut problems);
        if let Some(owner) = self.0.iter().find(|e| e.token_secret_arn == request.source.password_secret_arn) {
            problems.push(field(
                "source.passwordSecretArn",
                format!(
                    "is the token secret of the stack's engine {}: it would be sent to the engine as the database password",
                    owner.name
                ),
            ));
        }
        match engine {
            Some(engine) if problems.is_empty() => Ok(engine),
            _ => Err(RefreshError::InvalidRequest(ValidationErrors(problems))),
        }
    }

    fn named(&self, spec: &DblabSpec, problems: &mut Vec<FieldError>) -> Option<&Engine> {
        let by_name = spec.engine.as_deref().map(|name| (name, self.by_name(name)));
        let by_address = spec.api_endpoint.as_deref().map(|url| (url, self.by_address(url)));
        let engine = match (by_name, by_address) {
            (Some((name, None)), _) => {
                problems.push(field("dblab.engine", format!("{name:?} is not one of {}", self.describe())));
                None
            }
            (_, Some((url, None))) => {
                problems.push(field(
                    "dblab.apiEndpoint",
                    format!("{url} is not the address of one of {}", self.describe()),
                ));
                None
            }
            (Some((_, Some(named))), Some((url, Some(addressed)))) if named != addressed => {
                problems.push(field(
                    "dblab.apiEndpoint",
                    format!(
                        "{url} is engine {}'s address, not dblab.engine {}'s ({})",
                        addressed.name, named.name, named.endpoint
                    ),
                ));
                None
            }
            (Some((_, found)), _) | (None, Some((_, found))) => found,
            (None, None) => {
                problems.push(field("dblab.engine", format!("required: one of {}", self.describe())));
                None
            }
        }?;
        let mut fits = true;
        if spec.token_secret_arn.as_ref().is_some_and(|arn| *arn != engine.token_secret_arn) {
            problems.push(field(
                "dblab.tokenSecretArn",
                format!(
                    "is not engine {}'s token secret in the stack's list ({}); leave it out to use the engine's",
                    engine.name, engine.token_secret_arn
                ),
            ));
            fits = false;
        }
        if engine.insecure && spec.ca_certificate.is_some() {
            problems.push(field(
                "dblab.caCertificate",
                format!(
                    "would be ignored: the stack lists engine {} as insecure (its certificate is not verified)",
                    engine.name
                ),
            ));
            fits = false;
        }
        fits.then_some(engine)
    }

    /// The engine a request's labels name (a document that may be invalid), by its name,
    /// else by its address: for releasing what a run may have taken, never for a call.
    pub fn labelled(&self, labels: &Labels<'_>) -> Option<&Engine> {
        match (labels.dblab_engine(), labels.dblab_endpoint()) {
            (Some(name), _) => self.by_name(name),
            (None, Some(url)) => self.by_address(url),
            (None, None) => None,
        }
    }

    fn by_name(&self, name: &str) -> Option<&Engine> {
        self.0.iter().find(|e| e.name == name)
    }

    /// Any spelling of a listed address.
    fn by_address(&self, url: &str) -> Option<&Engine> {
        self.0.iter().find(|e| same_address(&e.endpoint, url))
    }

    /// The list as an error names it.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "the stack's engines: it lists none (its DblabEngines parameter is empty)".into();
        }
        let names: Vec<String> = self.0.iter().map(Engine::to_string).collect();
        format!("the stack's engines (its DblabEngines parameter): {}", names.join(", "))
    }
}

fn field(path: &str, message: String) -> FieldError {
    FieldError { path: path.into(), message }
}

fn parse_entry(entry: &str) -> Result<Engine, String> {
    let mut words = entry.split_whitespace();
    let (Some(name), Some(endpoint), Some(token_secret_arn)) = (words.next(), words.next(), words.next()) else {
        return Err("expected NAME ENDPOINT TOKEN_SECRET_ARN [plaintext] [insecure]".into());
    };
    crate::request::check_target(name).map_err(|e| format!("name {e}"))?;
    let endpoint = crate::request::check_endpoint(endpoint)?;
    crate::request::check_secret_arn(token_secret_arn)?;
    let (mut plaintext, mut insecure) = (false, false);
    for word in words {
        match word {
            PLAINTEXT if !plaintext => plaintext = true,
            INSECURE if !insecure => insecure = true,
            _ => return Err(format!("{word:?} is not an option (plaintext, insecure), or is given twice")),
        }
    }
    let http = endpoint.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    match (http, plaintext, insecure) {
        (true, false, _) => Err(format!(
            "{endpoint} is plain http://: the token and the database password would cross the network in clear; \
             use https://, or add `plaintext` if the path is private"
        )),
        (true, _, true) => Err("`insecure` is for an https:// endpoint: plain http:// has no certificate".into()),
        (false, true, _) => Err(format!("`plaintext` is for an http:// endpoint, and {endpoint} is https://")),
        _ => Ok(Engine {
            name: name.to_string(),
            endpoint,
            token_secret_arn: token_secret_arn.to_string(),
            plaintext,
            insecure,
        }),
    }
}

/// Two spellings of one address (case, default port, trailing slash) are one engine.
fn same_address(a: &str, b: &str) -> bool {
    match (normalized_address(a), normalized_address(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// An engine's API address with its host lower-cased, its port always given and no
/// trailing slash: one spelling for every way of writing it.
pub(crate) fn normalized_address(api_endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(api_endpoint.trim()).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let path = url.path().trim_end_matches('/');
    Some(format!("{}://{host}:{port}{path}", url.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN_A: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-a-AbCdEf";
    const TOKEN_B: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-b-GhIjKl";
    const PASSWORD: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pw-MnOpQr";

    fn list() -> EngineList {
        EngineList::parse(&format!(
            "staging https://dblab.internal:2345 {TOKEN_A} insecure, local http://127.0.0.1:2345 {TOKEN_B} plaintext"
        ))
        .unwrap()
    }

    fn request(dblab: serde_json::Value) -> RefreshRequest {
        RefreshRequest::from_document(&json!({
            "target": "t",
            "source": {"type": "rds", "identifier": "prod", "dbName": "app", "username": "u", "passwordSecretArn": PASSWORD},
            "clone": {"instanceClass": "db.t3.micro"},
            "dblab": dblab,
        }))
        .unwrap()
    }

    fn refusal(list: &EngineList, request: &RefreshRequest) -> Vec<(String, String)> {
        match list.resolve(request) {
            Err(RefreshError::InvalidRequest(errors)) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_list_gives_each_engine_its_address_token_and_transport() {
        let list = list();
        let [staging, local] = list.engines() else { panic!("{list:?}") };
        assert_eq!(
            (staging.name(), staging.endpoint(), staging.token_secret_arn(), staging.plaintext(), staging.insecure()),
            ("staging", "https://dblab.internal:2345", TOKEN_A, false, true)
        );
        assert_eq!((local.name(), local.plaintext(), local.insecure()), ("local", true, false));
        assert_eq!(
            EngineList::parse(" , ").unwrap().engines().len(),
            0,
            "an empty list is read, and refuses every request"
        );
    }

    #[test]
    fn a_list_with_a_wrong_entry_is_refused_naming_it() {
        for (text, expected) in [
            ("staging https://e", "expected NAME ENDPOINT TOKEN_SECRET_ARN"),
            (&format!("-x https://e {TOKEN_A}"), "name"),
            (&format!("x https://u:p@e {TOKEN_A}"), "credentials"),
            ("x https://e arn:aws:secretsmanager:eu-west-1:123456789012:secret:t", "partial ARN"),
            (&format!("x http://e {TOKEN_A}"), "add `plaintext`"),
            (&format!("x http://e {TOKEN_A} plaintext insecure"), "`insecure` is for an https://"),
            (&format!("x https://e {TOKEN_A} plaintext"), "`plaintext` is for an http://"),
            (&format!("x https://e {TOKEN_A} insecure insecure"), "given twice"),
            (&format!("x http://e {TOKEN_A} plaintext plaintext"), "given twice"),
            (&format!("x https://e {TOKEN_A} verify"), "not an option"),
            (&format!("x https://e {TOKEN_A}, x https://f {TOKEN_B}"), "the name \"x\" is given twice"),
            (&format!("x https://E:443/ {TOKEN_A}, y https://e {TOKEN_B}"), "is x's address too"),
        ] {
            let error = EngineList::parse(text).unwrap_err();
            assert!(error.contains(expected) && error.contains("entry"), "{text}: {error}");
        }
    }

    #[test]
    fn a_request_names_a_listed_engine_by_name_or_address() {
        let list = list();
        assert_eq!(list.resolve(&request(json!({"engine": "staging"}))).unwrap().name(), "staging");
        let by_address = request(json!({"apiEndpoint": "HTTPS://dblab.internal:2345/"}));
        assert_eq!(list.resolve(&by_address).unwrap().name(), "staging", "another spelling of the address");
        let both =
            request(json!({"engine": "local", "apiEndpoint": "http://127.0.0.1:2345", "tokenSecretArn": TOKEN_B}));
        assert_eq!(list.resolve(&both).unwrap().name(), "local");
    }

    #[test]
    fn a_request_naming_anything_else_is_refused_with_the_list() {
        let list = list();
        let cases = [
            (json!({"engine": "prod"}), "dblab.engine", "\"prod\" is not one of"),
            (json!({"apiEndpoint": "https://attacker.example"}), "dblab.apiEndpoint", "not the address of one of"),
            (
                json!({"engine": "local", "apiEndpoint": "https://dblab.internal:2345"}),
                "dblab.apiEndpoint",
                "engine staging's address, not dblab.engine local's",
            ),
            (
                json!({"engine": "staging", "tokenSecretArn": TOKEN_B}),
                "dblab.tokenSecretArn",
                "not engine staging's token secret",
            ),
        ];
        for (dblab, path, expected) in cases {
            let problems = refusal(&list, &request(dblab.clone()));
            assert_eq!(problems.len(), 1, "{dblab}: {problems:?}");
            assert_eq!(problems[0].0, path, "{dblab}");
            assert!(problems[0].1.contains(expected), "{dblab}: {}", problems[0].1);
            if expected.contains("one of") {
                assert!(
                    problems[0].1.contains("staging (https://dblab.internal:2345), local (http://127.0.0.1:2345)"),
                    "names the list"
                );
            }
        }
        let problems = refusal(&EngineList::default(), &request(json!({"engine": "staging"})));
        assert!(problems[0].1.contains("it lists none"), "{problems:?}");
        // A CA the request trusts would be ignored by an engine the stack does not verify.
        let mut with_ca = request(json!({"engine": "staging"}));
        with_ca.dblab.ca_certificate = Some("a PEM".into());
        let problems = refusal(&list, &with_ca);
        assert_eq!(problems[0].0, "dblab.caCertificate");
        assert!(problems[0].1.contains("lists engine staging as insecure"), "{problems:?}");
    }

    #[test]
    fn the_labels_of_any_document_find_the_engine_by_name_then_address() {
        let list = list();
        let named = |doc: serde_json::Value| list.labelled(&Labels::of(&doc)).map(|e| e.name().to_string());
        assert_eq!(
            named(json!({"dblab": {"engine": "local", "apiEndpoint": "https://dblab.internal:2345"}})),
            Some("local".into())
        );
        assert_eq!(named(json!({"dblab": {"apiEndpoint": "https://DBLAB.internal:2345/"}})), Some("staging".into()));
        assert_eq!(named(json!({"dblab": {"engine": "prod"}})), None);
        assert_eq!(named(json!({"target": 1})), None);
    }

    #[test]
    fn an_engines_token_is_never_taken_as_the_source_password() {
        let mut doc = request(json!({"engine": "staging"}));
        doc.source.password_secret_arn = TOKEN_B.into();
        let problems = refusal(&list(), &doc);
        assert_eq!(problems[0].0, "source.passwordSecretArn");
        assert!(problems[0].1.contains("token secret of the stack's engine local"), "{problems:?}");
    }
}
