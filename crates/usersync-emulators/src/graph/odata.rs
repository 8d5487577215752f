//! OData plumbing shared by the Graph handlers: responses and error bodies, query options
//! (`$select`, `$top`, `$filter`, `$count`, `$skiptoken`), the `$filter` parser/evaluator, and
//! absolute link building.

use serde_json::{Map, Value, json};

/// Content type Graph sends on JSON responses.
/// <https://learn.microsoft.com/graph/json-batching> (response item headers).
pub const JSON_CT: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Body of a Graph response.
#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Bytes(Vec<u8>, &'static str),
    Text(String),
}

/// A transport-independent Graph response (also used for `$batch` items).
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl GraphResponse {
    pub fn json(status: u16, v: Value) -> Self {
        GraphResponse {
            status,
            headers: Vec::new(),
            body: Body::Json(v),
        }
    }
}

/// A Graph error. `innerError` is filled in by the transport layer (it knows the request ids).
/// Shape: <https://learn.microsoft.com/graph/errors>.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

pub type GResult<T> = Result<T, GraphError>;

impl GraphError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    /// 400 `BadRequest` (OData parser errors).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    /// 400 `Request_UnsupportedQuery` "Unsupported Query."
    /// <https://learn.microsoft.com/graph/aad-advanced-queries>
    pub fn unsupported_query() -> Self {
        Self::new(400, "Request_UnsupportedQuery", "Unsupported Query.")
    }
    /// 404 `Request_ResourceNotFound`.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    /// 403 `Authorization_RequestDenied`.
    /// <https://learn.microsoft.com/graph/resolve-auth-errors>
    pub fn forbidden() -> Self {
        Self::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// Renders the error body for the given request ids.
    pub fn into_response(
        self,
        request_id: &str,
        client_request_id: &str,
        date: &str,
    ) -> GraphResponse {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {"date": date, "request-id": request_id, "client-request-id": client_request_id}
        }});
        GraphResponse {
            status: self.status,
            headers: self.headers,
            body: Body::Json(body),
        }
    }
}

/// Parsed OData system query options (keys accepted with or without `$`, case-insensitive,
/// as Graph v1.0 does: <https://learn.microsoft.com/graph/query-parameters>).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub select: Option<Vec<String>>,
    pub top: Option<String>,
    pub filter: Option<String>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    pub count: bool,
    pub expand: Option<String>,
    pub search: Option<String>,
    pub orderby: Option<String>,
    /// All pairs except `$skiptoken`, decoded, in request order (for nextLinks).
    pub carry: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> GResult<Query> {
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let key = k.trim_start_matches('$').to_ascii_lowercase();
            let val = v.to_string();
            match key.as_str() {
                "select" => {
                    q.select = Some(
                        val.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "top" => q.top = Some(val.clone()),
                "filter" => q.filter = Some(val.clone()),
                "skiptoken" => {
                    q.skiptoken = Some(val);
                    continue;
                }
                "deltatoken" => q.deltatoken = Some(val.clone()),
                "count" => match val.as_str() {
                    "true" => q.count = true,
                    "false" => q.count = false,
                    _ => {
                        return Err(GraphError::bad_request(format!(
                            "Invalid value '{val}' for $count query option found. The $count query option requires a Boolean value."
                        )));
                    }
                },
                "expand" => q.expand = Some(val.clone()),
                "search" => q.search = Some(val.clone()),
                "orderby" => q.orderby = Some(val.clone()),
                "skip" => {
                    // $skip is not supported on directory collections.
                    // https://learn.microsoft.com/graph/api/user-list (Optional query parameters)
                    return Err(GraphError::new(
                        400,
                        "Request_BadRequest",
                        "'$skip' is not supported by the service.",
                    ));
                }
                _ => {}
            }
            q.carry.push((k.to_string(), v.to_string()));
        }
        Ok(q)
    }

    /// Page size from `$top`: default 100, 1..=max else Graph's 400.
    /// <https://learn.microsoft.com/graph/api/user-list> ("default and maximum page sizes are
    /// 100 and 999"); <https://learn.microsoft.com/graph/paging>.
    pub fn page_size(&self, default: usize, max: usize) -> GResult<usize> {
        match &self.top {
            None => Ok(default),
            Some(t) => match t.parse::<i64>() {
                Ok(n) if n >= 1 && n as usize <= max => Ok(n as usize),
                Ok(_) => Err(GraphError::new(
                    400,
                    "Request_BadRequest",
                    format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                    ),
                )),
                Err(_) => Err(GraphError::bad_request(format!(
                    "Invalid value '{t}' for $top query option found. The $top query option requires a non-negative integer value."
                ))),
            },
        }
    }
}

/// Percent-encodes a query value the way Graph's links look (keeps `$`, `,`, `'`, `(`, `)`).
pub fn enc(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b',')
        .remove(b'$')
        .remove(b'(')
        .remove(b')')
        .remove(b'\'')
        .remove(b':')
        .remove(b'/');
    utf8_percent_encode(s, SET).to_string()
}

/// Builds `{graph_base}{path}?{carried options}&$skiptoken={token}`.
pub fn next_link(
    graph_base: &str,
    path: &str,
    carry: &[(String, String)],
    skiptoken: &str,
) -> String {
    let mut parts: Vec<String> = carry
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    parts.push(format!("$skiptoken={}", enc(skiptoken)));
    format!("{graph_base}{path}?{}", parts.join("&"))
}

/// Encodes an opaque paging/delta token (base64url JSON).
pub fn encode_token(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Decodes a token made by [`encode_token`].
pub fn decode_token(s: &str) -> Option<Value> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Builds the `@odata.context` value, e.g. `…/$metadata#users(displayName,id)`.
/// <https://learn.microsoft.com/graph/delta-query-users>
pub fn context(graph_base: &str, entity_set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(sel) if !sel.is_empty() => {
            format!("{graph_base}/$metadata#{entity_set}({})", sel.join(","))
        }
        _ => format!("{graph_base}/$metadata#{entity_set}"),
    }
}

// ---------------------------------------------------------------------------------------
// $filter
// ---------------------------------------------------------------------------------------

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Eq(String, Value),
    Ne(String, Value),
    In(String, Vec<Value>),
    StartsWith(String, String),
    EndsWith(String, String),
    /// `prop/any(x:x eq 'v')`
    Any(String, Value),
    /// `prop ge|gt|le|lt value` (operator lower-cased).
    Cmp(String, &'static str, Value),
}

/// Deepest parenthesis / `not` nesting accepted in a `$filter`. OData's reference parser
/// (Microsoft.OData.Core `ODataUriParserSettings`) stops at a recursion limit with a 400; Graph
/// does not document its own value, so the emulator uses a conservative one that keeps the
/// recursive parser far from the stack limit (a 4 KB URL of `(((…` used to kill the process).
pub const MAX_FILTER_DEPTH: usize = 100;
/// Most operator nodes in one `$filter` (bounds the depth of left-deep `and`/`or` chains,
/// which evaluation and drop walk recursively).
pub const MAX_FILTER_NODES: usize = 1000;

/// Which collection a `$filter` runs on (the rules differ per resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterScope {
    /// `/users`: the per-property table of the advanced-query page.
    Users,
    /// `/groups`.
    Groups,
    /// Member lists, applications, delta.
    Other,
}

/// Support of a `$filter` operator on a property, from the advanced-query page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Support {
    Default,
    Advanced,
    No,
}

/// User `$filter` support table (columns eq, ne, NOT, ge, le, in, startsWith, null values),
/// transcribed from <https://learn.microsoft.com/graph/aad-advanced-queries> ("Support for
/// filter by properties of Microsoft Entra ID (directory) objects", user table;
/// microsoft-graph-docs-contrib `includes/filter-directory-objects.md`). `D` = works by
/// default, `A` = needs `ConsistencyLevel: eventual` + `$count=true`, `-` = not supported.
/// Properties that are not listed do not support `$filter` at all.
const USER_FILTER_TABLE: &[(&str, &str)] = &[
    ("accountEnabled", "DAAAAD--"),
    ("ageGroup", "DAA--D--"),
    ("assignedLicenses", "D-A-----"),
    ("assignedPlans", "D-A-----"),
    ("businessPhones", "D-A-----"),
    ("city", "DAAD-DDA"),
    ("companyName", "AAAAAAAA"),
    ("consentProvidedForMinor", "DAA--D--"),
    ("country", "DAADDDDA"),
    ("createdDateTime", "DAADDA--"),
    ("creationType", "DAA--D--"),
    ("deletedDateTime", "DAADDA--"),
    ("department", "DAADDDDA"),
    ("displayName", "DAA--DDA"),
    ("employeeHireDate", "AA-AAA--"),
    ("employeeId", "DA--A-DA"),
    ("employeeType", "AA-AAAA-"),
    ("givenName", "DA-DDDDA"),
    ("id", "DAA-----"),
    ("identities", "D-------"),
    ("imAddresses", "DAADD-D-"),
    ("jobTitle", "DA-DDD-A"),
    ("mail", "DA-DDDD-"),
    ("mailNickname", "DA-DDDDA"),
    ("mobilePhone", "AA-AAAAA"),
    ("officeLocation", "AA-AAAAA"),
    ("onPremisesExtensionAttributes", "AA-AAA--"),
    ("onPremisesImmutableId", "AA-AAA--"),
    ("onPremisesLastSyncDateTime", "AA-AAA--"),
    ("onPremisesSamAccountName", "AA-AAAA-"),
    ("onPremisesSecurityIdentifier", "DA---D-A"),
    ("onPremisesSyncEnabled", "DA-AAD--"),
    ("onPremisesUserPrincipalName", "DA-DDDD-"),
    ("otherMails", "DA-DDDD-"),
    ("passwordPolicies", "AA-----A"),
    ("postalCode", "AA-AAAAA"),
    ("preferredLanguage", "AA-AAAAA"),
    ("proxyAddresses", "DA-DD-DA"),
    ("showInAddressList", "AA-AAA--"),
    ("signInActivity", "DA-DD---"),
    ("state", "DA-DDDDA"),
    ("streetAddress", "AA-AAAAA"),
    ("surname", "DA-DDDDA"),
    ("usageLocation", "DA-DDDD-"),
    ("userPrincipalName", "DA--DDD-"),
    ("userType", "DAA--D-A"),
];

/// Column of [`USER_FILTER_TABLE`].
#[derive(Clone, Copy)]
enum Col {
    Eq = 0,
    Ne = 1,
    // Column 2 (NOT) is not consulted: "All properties that support the eq operator also
    // support the ne or not operators."
    Ge = 3,
    Le = 4,
    In = 5,
    StartsWith = 6,
    Null = 7,
}

fn user_support(prop: &str, col: Col) -> Support {
    let Some((_, row)) = USER_FILTER_TABLE
        .iter()
        .find(|(p, _)| p.eq_ignore_ascii_case(prop))
    else {
        return Support::No;
    };
    match row.as_bytes()[col as usize] {
        b'D' => Support::Default,
        b'A' => Support::Advanced,
        _ => Support::No,
    }
}

/// 400 for an operator that needs the advanced query parameters (the doc's example body).
/// <https://learn.microsoft.com/graph/aad-advanced-queries> ("Error handling …").
fn needs_advanced(op: &str) -> GraphError {
    GraphError::new(
        400,
        "Request_UnsupportedQuery",
        format!(
            "Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
        ),
    )
}

/// 400 for a property/operator pair the service does not index (the doc's example body).
fn unsupported_clause(prop: &str, resource: &str) -> GraphError {
    GraphError::new(
        400,
        "Request_UnsupportedQuery",
        format!(
            "Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'."
        ),
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(s: &str) -> GResult<Vec<Tok>> {
    let err = |pos: usize| {
        GraphError::bad_request(format!(
            "Invalid filter clause: Syntax error at position {pos} in '{s}'."
        ))
    };
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    if i >= b.len() {
                        return Err(err(i));
                    }
                    if b[i] == '\'' {
                        if i + 1 < b.len() && b[i + 1] == '\'' {
                            v.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    v.push(b[i]);
                    i += 1;
                }
                out.push(Tok::Str(v));
            }
            c if c.is_alphanumeric() || "_./-+@#".contains(c) => {
                let st = i;
                // A literal starting with a digit may be a DateTimeOffset (`2024-01-01T00:00:00Z`).
                let digit = c.is_ascii_digit();
                while i < b.len()
                    && (b[i].is_alphanumeric()
                        || "_./-+@#".contains(b[i])
                        || (digit && b[i] == ':'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(b[st..i].iter().collect()));
            }
            _ => return Err(err(i)),
        }
    }
    Ok(out)
}

struct P<'a> {
    t: Vec<Tok>,
    i: usize,
    src: &'a str,
    depth: usize,
    nodes: usize,
}

impl P<'_> {
    fn err(&self) -> GraphError {
        GraphError::bad_request(format!(
            "Invalid filter clause: Syntax error at position {} in '{}'.",
            self.i, self.src
        ))
    }
    /// Counts one operator node; too many is Graph's 400, not a deep recursion later.
    fn node(&mut self) -> GResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: The query specified in the URI is not valid. The node count limit of '{MAX_FILTER_NODES}' has been exceeded."
            )));
        }
        Ok(())
    }
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }
    fn expect(&mut self, t: Tok) -> GResult<()> {
        if self.t.get(self.i) == Some(&t) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }
    fn ident(&mut self) -> GResult<String> {
        match self.t.get(self.i) {
            Some(Tok::Ident(s)) => {
                self.i += 1;
                Ok(s.clone())
            }
            _ => Err(self.err()),
        }
    }
    fn literal(&mut self) -> GResult<Value> {
        let v = match self.t.get(self.i) {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Ident(s)) => match s.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => match n.parse::<i64>() {
                    Ok(x) => json!(x),
                    // DateTimeOffset literal, compared as ISO-8601 text.
                    Err(_) if n.parse::<jiff::Timestamp>().is_ok() => Value::String(n.to_string()),
                    Err(_) => return Err(self.err()),
                },
            },
            _ => return Err(self.err()),
        };
        self.i += 1;
        Ok(v)
    }
    fn or(&mut self) -> GResult<Filter> {
        let mut l = self.and()?;
        while self.peek_kw("or") {
            self.i += 1;
            self.node()?;
            l = Filter::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> GResult<Filter> {
        let mut l = self.atom()?;
        while self.peek_kw("and") {
            self.i += 1;
            self.node()?;
            l = Filter::And(Box::new(l), Box::new(self.atom()?));
        }
        Ok(l)
    }
    fn atom(&mut self) -> GResult<Filter> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: The query specified in the URI is not valid. The recursion limit of '{MAX_FILTER_DEPTH}' has been exceeded."
            )));
        }
        self.node()?;
        let r = self.atom_inner();
        self.depth -= 1;
        r
    }
    fn atom_inner(&mut self) -> GResult<Filter> {
        if self.t.get(self.i) == Some(&Tok::Open) {
            self.i += 1;
            let e = self.or()?;
            self.expect(Tok::Close)?;
            return Ok(e);
        }
        if self.peek_kw("not") {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.atom()?)));
        }
        let name = self.ident()?;
        let lname = name.to_ascii_lowercase();
        if (lname == "startswith" || lname == "endswith") && self.t.get(self.i) == Some(&Tok::Open)
        {
            self.i += 1;
            let prop = self.ident()?;
            self.expect(Tok::Comma)?;
            let v = match self.literal()? {
                Value::String(s) => s,
                _ => return Err(self.err()),
            };
            self.expect(Tok::Close)?;
            return Ok(if lname == "startswith" {
                Filter::StartsWith(prop, v)
            } else {
                Filter::EndsWith(prop, v)
            });
        }
        if let Some(prop) = lname
            .strip_suffix("/any")
            .map(|_| name[..name.len() - 4].to_string())
        {
            self.expect(Tok::Open)?;
            let var = self.ident()?;
            self.expect(Tok::Colon)?;
            let var2 = self.ident()?;
            if var != var2 || !self.peek_kw("eq") {
                return Err(self.err());
            }
            self.i += 1;
            let v = self.literal()?;
            self.expect(Tok::Close)?;
            return Ok(Filter::Any(prop, v));
        }
        let op = self.ident()?.to_ascii_lowercase();
        match op.as_str() {
            "eq" => Ok(Filter::Eq(name, self.literal()?)),
            "ne" => Ok(Filter::Ne(name, self.literal()?)),
            "in" => {
                self.expect(Tok::Open)?;
                let mut vals = vec![self.literal()?];
                while self.t.get(self.i) == Some(&Tok::Comma) {
                    self.i += 1;
                    vals.push(self.literal()?);
                }
                self.expect(Tok::Close)?;
                Ok(Filter::In(name, vals))
            }
            "gt" | "ge" | "lt" | "le" => {
                let op = match op.as_str() {
                    "gt" => "gt",
                    "ge" => "ge",
                    "lt" => "lt",
                    _ => "le",
                };
                Ok(Filter::Cmp(name, op, self.literal()?))
            }
            _ => Err(self.err()),
        }
    }
}

impl Filter {
    /// Parses a `$filter` for a member list, applications or delta: advanced operators
    /// (`ne`, `not`, `endsWith`) need `ConsistencyLevel: eventual` + `$count=true`
    /// (`advanced`), else Graph's 400; `ge`/`le`/`gt`/`lt` are refused.
    /// <https://learn.microsoft.com/graph/aad-advanced-queries>
    pub fn parse(s: &str, advanced: bool) -> GResult<Filter> {
        Self::parse_in(s, advanced, FilterScope::Other)
    }

    /// Parses a `$filter` and checks it against the rules of `scope` (for `/users`, the
    /// per-property table of the advanced-query page).
    pub fn parse_in(s: &str, advanced: bool, scope: FilterScope) -> GResult<Filter> {
        let mut p = P {
            t: tokenize(s)?,
            i: 0,
            src: s,
            depth: 0,
            nodes: 0,
        };
        let f = p.or()?;
        if p.i != p.t.len() {
            return Err(p.err());
        }
        f.check(advanced, scope)?;
        Ok(f)
    }

    fn check(&self, advanced: bool, scope: FilterScope) -> GResult<()> {
        // Per-property rule for /users; operator-only rules elsewhere.
        let user = |prop: &str, col: Col, op: &str| -> GResult<()> {
            match user_support(prop, col) {
                Support::Default => Ok(()),
                Support::Advanced if advanced => Ok(()),
                Support::Advanced => Err(needs_advanced(op)),
                Support::No => Err(unsupported_clause(prop, "User")),
            }
        };
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.check(advanced, scope)?;
                b.check(advanced, scope)
            }
            Filter::Ne(..) if !advanced => Err(GraphError::new(
                400,
                "Request_UnsupportedQuery",
                "Unsupported property filter clause operator 'NotEqualsMatch'.",
            )),
            Filter::Not(_) if !advanced => Err(needs_advanced("Not")),
            Filter::EndsWith(..) if !advanced => Err(needs_advanced("endsWith")),
            Filter::Not(inner) => inner.check(advanced, scope),
            Filter::Cmp(p, op, _) => match scope {
                FilterScope::Users => user(
                    p,
                    if matches!(*op, "ge" | "gt") {
                        Col::Ge
                    } else {
                        Col::Le
                    },
                    op,
                ),
                FilterScope::Groups => Err(unsupported_clause(p, "Group")),
                FilterScope::Other => Err(GraphError::unsupported_query()),
            },
            _ if scope != FilterScope::Users => Ok(()),
            Filter::Eq(p, Value::Null) => user(p, Col::Null, "Equals"),
            Filter::Eq(p, _) | Filter::Any(p, _) => user(p, Col::Eq, "Equals"),
            Filter::Ne(p, _) => user(p, Col::Ne, "NotEquals"),
            // "The in operator is supported by default whenever eq operator is supported by
            // default."
            Filter::In(p, _) if user_support(p, Col::Eq) == Support::Default => Ok(()),
            Filter::In(p, _) => user(p, Col::In, "In"),
            Filter::StartsWith(p, _) => user(p, Col::StartsWith, "startsWith"),
            // endsWith: mail, otherMails, userPrincipalName, proxyAddresses only (advanced).
            Filter::EndsWith(p, _) => {
                if ["mail", "otherMails", "userPrincipalName", "proxyAddresses"]
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(p))
                {
                    Ok(())
                } else {
                    Err(unsupported_clause(p, "User"))
                }
            }
        }
    }

    /// If the filter is only `id eq '…'` / `id in (…)` OR-ed together, the ids.
    pub fn id_set(&self) -> Option<Vec<String>> {
        match self {
            Filter::Eq(p, Value::String(v)) if p.eq_ignore_ascii_case("id") => {
                Some(vec![v.clone()])
            }
            Filter::In(p, vs) if p.eq_ignore_ascii_case("id") => {
                vs.iter().map(|v| v.as_str().map(str::to_string)).collect()
            }
            Filter::Or(a, b) => {
                let mut x = a.id_set()?;
                x.extend(b.id_set()?);
                Some(x)
            }
            _ => None,
        }
    }

    /// Evaluates against an object; `get` returns a property value (`None` = unknown property).
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<Value>) -> GResult<bool> {
        let prop = |p: &str| {
            get(p).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid filter clause: Could not find a property named '{p}' on type 'microsoft.graph.directoryObject'."
                ))
            })
        };
        Ok(match self {
            Filter::And(a, b) => a.eval(get)? && b.eval(get)?,
            Filter::Or(a, b) => a.eval(get)? || b.eval(get)?,
            Filter::Not(a) => !a.eval(get)?,
            Filter::Eq(p, v) => val_eq(&prop(p)?, v),
            Filter::Ne(p, v) => !val_eq(&prop(p)?, v),
            Filter::In(p, vs) => {
                let x = prop(p)?;
                vs.iter().any(|v| val_eq(&x, v))
            }
            Filter::StartsWith(p, s) => prop(p)?
                .as_str()
                .is_some_and(|x| x.to_lowercase().starts_with(&s.to_lowercase())),
            Filter::EndsWith(p, s) => prop(p)?
                .as_str()
                .is_some_and(|x| x.to_lowercase().ends_with(&s.to_lowercase())),
            Filter::Any(p, v) => match prop(p)? {
                Value::Array(items) => items.iter().any(|x| val_eq(x, v)),
                _ => false,
            },
            Filter::Cmp(p, op, v) => {
                let x = prop(p)?;
                let ord = match (&x, v) {
                    (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
                    (Value::Number(a), Value::Number(b)) => a
                        .as_f64()
                        .zip(b.as_f64())
                        .and_then(|(a, b)| a.partial_cmp(&b)),
                    (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                    _ => None,
                };
                ord.is_some_and(|o| match *op {
                    "gt" => o.is_gt(),
                    "ge" => o.is_ge(),
                    "lt" => o.is_lt(),
                    _ => o.is_le(),
                })
            }
        })
    }
}

/// Directory string comparisons are case-insensitive.
fn val_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Keeps only `select`ed keys (plus `id` and `@odata.*` annotations) of an object, in the
/// requested order. Unknown names → `Err(name)`.
pub fn project(
    full: &Map<String, Value>,
    select: &[String],
    known: &[&str],
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for s in select {
        let canon = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .ok_or_else(|| s.clone())?;
        out.insert(
            canon.to_string(),
            full.get(*canon).cloned().unwrap_or(Value::Null),
        );
    }
    for (k, v) in full {
        if k == "id" || k.starts_with("@odata") {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// `$select` of an unknown property: Graph's 400.
pub fn unknown_property(name: &str, ty: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.{ty}'."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sync_filters() {
        let f = Filter::parse("id in ('a','b') or id eq 'c'", false).unwrap();
        assert_eq!(f.id_set().unwrap(), vec!["a", "b", "c"]);
        let f = Filter::parse(
            "startswith(displayName,'Ad''a') and accountEnabled eq true",
            false,
        )
        .unwrap();
        let ok = f
            .eval(&|p| match p {
                "displayName" => Some(json!("ad'a L")),
                "accountEnabled" => Some(json!(true)),
                _ => None,
            })
            .unwrap();
        assert!(ok);
        assert!(Filter::parse("groupTypes/any(c:c eq 'Unified')", false).is_ok());
        assert!(Filter::parse("displayName ne 'x'", false).is_err());
        assert!(Filter::parse("displayName ne 'x'", true).is_ok());
        assert!(Filter::parse("displayName eq 'x", false).is_err());
    }
}
