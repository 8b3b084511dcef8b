//! Dapr's routing rules: a subscription's events go to the path of the first
//! rule whose `match` holds, else to the default route. A `match` is a CEL
//! expression over `event`; this evaluates the part of CEL that routing
//! rules use: `event.<attribute>` and `event.data.<field>` paths, string,
//! number and boolean literals, `==` `!=` `<` `<=` `>` `>=`, `&&` `||` `!`,
//! parentheses, and the string methods `startsWith`, `endsWith`, `contains`.
//! Anything else is refused when the subscription is made, naming the rule.

use layotto_core::{Error, Result};
use serde_json::Value;

use crate::cloudevent::TopicEvent;

/// The routes of each subscription, by (pubsub, topic).
pub type RoutesByTopic = std::collections::HashMap<(String, String), std::sync::Arc<Routes>>;

/// Where the events of one subscription go.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    default: String,
    rules: Vec<(Expr, String)>,
}

impl Routes {
    /// `rules` are (match, path) in priority order; an empty match always holds.
    pub fn new(default: impl Into<String>, rules: &[(String, String)]) -> Result<Self> {
        let rules = rules
            .iter()
            .map(|(matcher, path)| {
                let expr =
                    if matcher.trim().is_empty() { Ok(Expr::Lit(Value::Bool(true))) } else { parse(matcher) };
                expr.map(|e| (e, path.clone()))
                    .map_err(|why| Error::invalid_argument(format!("routing rule match '{matcher}': {why}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { default: default.into(), rules })
    }

    pub fn default_route(&self) -> &str {
        &self.default
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The path for `event`: the first rule that holds, else the default.
    pub fn route(&self, event: &TopicEvent) -> &str {
        if self.rules.is_empty() {
            return &self.default;
        }
        let scope = Scope { event, data: std::cell::OnceCell::new() };
        self.rules
            .iter()
            .find(|(expr, _)| scope.eval(expr).is_some_and(|v| v == Value::Bool(true)))
            .map_or(&self.default, |(_, path)| path)
    }
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    /// `event.a.b`: the names after `event`.
    Path(Vec<String>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    Method(Method, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum Method {
    StartsWith,
    EndsWith,
    Contains,
}

struct Scope<'a> {
    event: &'a TopicEvent,
    /// The event's data as JSON, parsed once when a rule reads it.
    data: std::cell::OnceCell<Value>,
}

impl Scope<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        let e = self.event;
        let text = match name {
            "id" => &e.id,
            "source" => &e.source,
            "type" => &e.r#type,
            "specversion" => &e.spec_version,
            "datacontenttype" => &e.data_content_type,
            "topic" => &e.topic,
            "pubsubname" => &e.pubsub_name,
            "data" => {
                let data = self.data.get_or_init(|| {
                    serde_json::from_slice(&e.data)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.data).into_owned()))
                });
                return Some(data.clone());
            }
            other => return e.metadata.get(other).map(|v| Value::String(v.clone())),
        };
        Some(Value::String(text.clone()))
    }

    /// `None` where CEL would fail (a missing field, mismatched types): the rule does not hold.
    fn eval(&self, expr: &Expr) -> Option<Value> {
        match expr {
            Expr::Lit(v) => Some(v.clone()),
            Expr::Path(names) => {
                let (first, rest) = names.split_first()?;
                let mut value = self.attribute(first)?;
                for name in rest {
                    value = value.get(name)?.clone();
                }
                Some(value)
            }
            Expr::Not(e) => Some(Value::Bool(!self.eval(e)?.as_bool()?)),
            Expr::And(a, b) => {
                let a = self.eval(a).and_then(|v| v.as_bool()).unwrap_or(false);
                Some(Value::Bool(a && self.eval(b).and_then(|v| v.as_bool()).unwrap_or(false)))
            }
            Expr::Or(a, b) => {
                let a = self.eval(a).and_then(|v| v.as_bool()).unwrap_or(false);
                Some(Value::Bool(a || self.eval(b).and_then(|v| v.as_bool()).unwrap_or(false)))
            }
            Expr::Cmp(op, a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                let ordering = match (&a, &b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
                    (Value::String(x), Value::String(y)) => x.cmp(y),
                    (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                    (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
                    _ => match op {
                        Cmp::Eq => return Some(Value::Bool(false)),
                        Cmp::Ne => return Some(Value::Bool(true)),
                        _ => return None,
                    },
                };
                use std::cmp::Ordering::*;
                let holds = match op {
                    Cmp::Eq => ordering == Equal,
                    Cmp::Ne => ordering != Equal,
                    Cmp::Lt => ordering == Less,
                    Cmp::Le => ordering != Greater,
                    Cmp::Gt => ordering == Greater,
                    Cmp::Ge => ordering != Less,
                };
                Some(Value::Bool(holds))
            }
            Expr::Method(method, target, arg) => {
                let target = self.eval(target)?;
                let arg = self.eval(arg)?;
                let (target, arg) = (target.as_str()?, arg.as_str()?);
                Some(Value::Bool(match method {
                    Method::StartsWith => target.starts_with(arg),
                    Method::EndsWith => target.ends_with(arg),
                    Method::Contains => target.contains(arg),
                }))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
}

fn tokenize(text: &str) -> std::result::Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string is not closed".into()),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(&other) => s.push(other),
                            None => return Err("a string is not closed".into()),
                        }
                    }
                    Some(&other) => s.push(other),
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(number.parse().map_err(|_| format!("bad number '{number}'"))?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = ["==", "!=", "<=", ">=", "&&", "||"].into_iter().find(|op| *op == two);
            let op = match op {
                Some(op) => op,
                None => match c {
                    '<' => "<",
                    '>' => ">",
                    '!' => "!",
                    '(' => "(",
                    ')' => ")",
                    '.' => ".",
                    '[' => "[",
                    ']' => "]",
                    ',' => ",",
                    other => return Err(format!("unexpected '{other}'")),
                },
            };
            i += op.len();
            tokens.push(Token::Op(op));
        }
    }
    Ok(tokens)
}

fn parse(text: &str) -> std::result::Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(t) => Err(format!("unexpected {t:?}; this runtime evaluates a subset of CEL (see docs)")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> std::result::Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> std::result::Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> std::result::Result<Expr, String> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let left = self.postfix()?;
        for (op, cmp) in [
            ("==", Cmp::Eq),
            ("!=", Cmp::Ne),
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ] {
            if self.eat(op) {
                return Ok(Expr::Cmp(cmp, Box::new(left), Box::new(self.postfix()?)));
            }
        }
        Ok(left)
    }

    fn postfix(&mut self) -> std::result::Result<Expr, String> {
        let mut expr = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(Token::Ident(name)) = self.tokens.get(self.at).cloned() else {
                    return Err("a name must follow '.'".into());
                };
                self.at += 1;
                if self.eat("(") {
                    let method = match name.as_str() {
                        "startsWith" => Method::StartsWith,
                        "endsWith" => Method::EndsWith,
                        "contains" => Method::Contains,
                        other => return Err(format!("unknown function '{other}'")),
                    };
                    let arg = self.or()?;
                    if !self.eat(")") {
                        return Err(format!("'{name}(' is not closed"));
                    }
                    expr = Expr::Method(method, Box::new(expr), Box::new(arg));
                } else {
                    match &mut expr {
                        Expr::Path(names) => names.push(name),
                        _ => return Err(format!("'.{name}' follows something that is not a path")),
                    }
                }
            } else if self.eat("[") {
                let Some(Token::Str(name)) = self.tokens.get(self.at).cloned() else {
                    return Err("a string key must follow '['".into());
                };
                self.at += 1;
                if !self.eat("]") {
                    return Err("'[' is not closed".into());
                }
                match &mut expr {
                    Expr::Path(names) => names.push(name),
                    _ => return Err(format!("'[\"{name}\"]' follows something that is not a path")),
                }
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> std::result::Result<Expr, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the expression ends early")?;
        self.at += 1;
        match token {
            Token::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Token::Num(n) => {
                Ok(Expr::Lit(serde_json::Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)))
            }
            Token::Ident(name) => match name.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                "event" => Ok(Expr::Path(Vec::new())),
                other => Err(format!("unknown name '{other}' (rules read 'event')")),
            },
            Token::Op("(") => {
                let inner = self.or()?;
                if self.eat(")") { Ok(inner) } else { Err("'(' is not closed".into()) }
            }
            Token::Op(op) => Err(format!("unexpected '{op}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(r#type: &str, data: &str) -> TopicEvent {
        TopicEvent {
            id: "1".into(),
            source: "orders".into(),
            r#type: r#type.into(),
            spec_version: "1.0".into(),
            data_content_type: "application/json".into(),
            data: data.as_bytes().to_vec(),
            topic: "t".into(),
            pubsub_name: "p".into(),
            metadata: Default::default(),
        }
    }

    fn rules(list: &[(&str, &str)]) -> Routes {
        let list: Vec<(String, String)> = list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        Routes::new("/default", &list).unwrap()
    }

    #[test]
    fn the_first_rule_that_holds_wins() {
        let routes = rules(&[
            (r#"event.type == "widget""#, "/widgets"),
            (r#"event.type == "gadget" && event.data.size > 3"#, "/big-gadgets"),
            (r#"event.type.startsWith("gad") || event.source == 'shop'"#, "/gadgets"),
        ]);
        assert_eq!(routes.route(&event("widget", "{}")), "/widgets");
        assert_eq!(routes.route(&event("gadget", r#"{"size": 5}"#)), "/big-gadgets");
        assert_eq!(routes.route(&event("gadget", r#"{"size": 1}"#)), "/gadgets");
        assert_eq!(routes.route(&event("gadget", "not json")), "/gadgets");
        assert_eq!(routes.route(&event("other", "{}")), "/default");
    }

    #[test]
    fn missing_fields_and_type_mismatches_do_not_hold() {
        let routes = rules(&[
            ("event.data.missing.deeper == 1", "/a"),
            (r#"event.data.n > "x""#, "/b"),
            (r#"!(event.data["n"] == 2)"#, "/c"),
        ]);
        assert_eq!(routes.route(&event("t", r#"{"n": 2}"#)), "/default");
        assert_eq!(routes.route(&event("t", r#"{"n": 3}"#)), "/c");
    }

    #[test]
    fn what_is_not_understood_is_refused_naming_the_rule() {
        for bad in
            ["event.type ==", "size(event.data) > 1", "event.type == 'x", "event.type.matches('a')", "a + b"]
        {
            let err = Routes::new("/d", &[(bad.to_owned(), "/p".to_owned())]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
