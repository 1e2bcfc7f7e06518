//! The condition language of `filter` and of `validate`'s rules, e.g. `status == "shipped"
//! && amount > 100`. It is small on purpose: a hand-written tokenizer and Pratt parser (a
//! crate would bring a grammar of its own and its error messages, and the language needs
//! neither), checked when the pipeline is validated, so a typo is reported with its column
//! before any run.
//!
//! An expression is parsed once into a tree of [`Condition`]s over [`Operand`]s; evaluating
//! it against a record allocates nothing unless a function makes new text (`lower`, `upper`)
//! or a record is refused. Each field remembers where it was found in the last record, so
//! records with the same columns find it at once.
//!
//! Values compare by what they are, and untyped text (a CSV cell) by what it reads as when the
//! other side says what to expect:
//! - numbers (integers, exact decimals, floats) compare by value, exactly unless a float is
//!   involved (`100.10 == 100.1`); text compared with a number is read as one (`"150" > 100`);
//! - dates and timestamps compare in time with text in ISO 8601 (`updated_at >=
//!   "2024-01-01"`); two points that both have a UTC offset compare as instants, otherwise as
//!   the wall-clock time each is written in (a date is its midnight);
//! - text compares with text by its characters (code point order);
//! - a comparison with null is false, `!=` included; `x == null`, `x != null` and
//!   `is_null(x)` test for it;
//! - a comparison that cannot be decided (text that is not a number ordered against a number, a
//!   field the record lacks) refuses the record, naming the field, rather than drop it in
//!   silence; `==` and `!=` between values of different kinds are decided (they differ).

use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use regex::Regex;

use crate::record::{Record, Text, Value};

/// A parsed condition, ready to test records.
#[derive(Debug)]
pub struct Expression {
    root: Condition,
}

/// Why an expression does not parse: the column (in characters, from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// Why a record's condition cannot be decided: the field at fault, if one is, and what is
/// wrong, the field named first (`` `amount`: `abc` is not a number, in `amount > 100` ``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: Option<String>,
    pub reason: String,
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        let chars: Vec<char> = text.chars().collect();
        let tokens = tokenize(&chars)?;
        let mut parser = Parser {
            chars: &chars,
            tokens,
            next: 0,
        };
        if parser.peek().token == Token::End {
            return Err(ParseError {
                column: 1,
                message:
                    "the expression is empty: write a condition such as `status == \"shipped\"`"
                        .into(),
            });
        }
        let parsed = parser.expression(0)?;
        let next = parser.peek();
        if next.token != Token::End {
            return Err(parser.unexpected_after_value(next));
        }
        Ok(Expression {
            root: parser.condition(parsed)?,
        })
    }

    /// Whether `record` meets the condition.
    pub fn is_true(&self, record: &Record) -> Result<bool, Refusal> {
        self.root.test(record)
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word: a field, a function, or `true`, `false`, `null`, `in`, `not`.
    Word(String),
    /// A field name in backticks.
    Quoted(String),
    Str(String),
    Number(String),
    Compare(Comparison),
    And,
    Or,
    Not,
    Minus,
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(word) => write!(f, "`{word}`"),
            Token::Quoted(name) => write!(f, "`` `{name}` ``"),
            Token::Str(text) => write!(f, "{text:?}"),
            Token::Number(number) => write!(f, "`{number}`"),
            Token::Compare(op) => write!(f, "`{}`", op.symbol()),
            Token::And => f.write_str("`&&`"),
            Token::Or => f.write_str("`||`"),
            Token::Not => f.write_str("`!`"),
            Token::Minus => f.write_str("`-`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::OpenList => f.write_str("`[`"),
            Token::CloseList => f.write_str("`]`"),
            Token::Comma => f.write_str("`,`"),
            Token::End => f.write_str("the end"),
        }
    }
}

/// A token and where it is: `start` and `end` are character indices (end exclusive).
#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    start: usize,
    end: usize,
}

fn error(at: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column: at + 1,
        message: message.into(),
    }
}

fn tokenize(chars: &[char]) -> Result<Vec<Spanned>, ParseError> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let start = at;
        let next = chars.get(at + 1).copied();
        let token = match c {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            '"' => {
                let (text, end) = string(chars, at)?;
                at = end;
                Token::Str(text)
            }
            '`' => {
                let close = chars[at + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| error(at, "this `` ` `` is not closed: a field name in backticks ends with another"))?;
                let name: String = chars[at + 1..at + 1 + close].iter().collect();
                if name.is_empty() {
                    return Err(error(
                        at,
                        "empty field name: write the name between the backticks",
                    ));
                }
                at += close + 2;
                Token::Quoted(name)
            }
            c if c.is_ascii_digit() => {
                at = digits(chars, at);
                if chars.get(at) == Some(&'.') {
                    let fraction = digits(chars, at + 1);
                    if fraction == at + 1 {
                        return Err(error(at, "expected digits after the decimal point"));
                    }
                    at = fraction;
                }
                if chars
                    .get(at)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    return Err(error(
                        start,
                        "a number ends with a digit: write a field name that starts with a digit in backticks",
                    ));
                }
                Token::Number(chars[start..at].iter().collect())
            }
            c if c.is_alphabetic() || c == '_' => {
                at += 1;
                while chars
                    .get(at)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    at += 1;
                }
                Token::Word(chars[start..at].iter().collect())
            }
            _ => {
                let (token, width) = match (c, next) {
                    ('=', Some('=')) => (Token::Compare(Comparison::Eq), 2),
                    ('!', Some('=')) => (Token::Compare(Comparison::Ne), 2),
                    ('<', Some('=')) => (Token::Compare(Comparison::Le), 2),
                    ('>', Some('=')) => (Token::Compare(Comparison::Ge), 2),
                    ('<', _) => (Token::Compare(Comparison::Lt), 1),
                    ('>', _) => (Token::Compare(Comparison::Gt), 1),
                    ('&', Some('&')) => (Token::And, 2),
                    ('|', Some('|')) => (Token::Or, 2),
                    ('!', _) => (Token::Not, 1),
                    ('-', _) => (Token::Minus, 1),
                    ('(', _) => (Token::Open, 1),
                    (')', _) => (Token::Close, 1),
                    ('[', _) => (Token::OpenList, 1),
                    (']', _) => (Token::CloseList, 1),
                    (',', _) => (Token::Comma, 1),
                    ('=', _) => {
                        return Err(error(at, "`=` is not an operator: write `==` to compare"));
                    }
                    ('&', _) => {
                        return Err(error(at, "`&` is not an operator: write `&&` for \"and\""));
                    }
                    ('|', _) => {
                        return Err(error(at, "`|` is not an operator: write `||` for \"or\""));
                    }
                    ('\'', _) => {
                        return Err(error(
                            at,
                            "text goes in double quotes: write \"...\", not '...'",
                        ));
                    }
                    (other, _) => return Err(error(at, format!("unexpected `{other}`"))),
                };
                at += width;
                token
            }
        };
        tokens.push(Spanned {
            token,
            start,
            end: at,
        });
    }
    tokens.push(Spanned {
        token: Token::End,
        start: chars.len(),
        end: chars.len(),
    });
    Ok(tokens)
}

fn digits(chars: &[char], mut at: usize) -> usize {
    while chars.get(at).is_some_and(char::is_ascii_digit) {
        at += 1;
    }
    at
}

/// The string literal whose opening quote is at `open`, and the index after its closing one.
fn string(chars: &[char], open: usize) -> Result<(String, usize), ParseError> {
    let mut text = String::new();
    let mut at = open + 1;
    loop {
        match chars.get(at) {
            None => {
                return Err(error(open, "this string is not closed: end it with `\"`"));
            }
            Some('"') => return Ok((text, at + 1)),
            Some('\\') => {
                let escaped = match chars.get(at + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('u') if chars.get(at + 2) == Some(&'{') => {
                        let close = chars[at + 3..].iter().position(|&c| c == '}');
                        let code = close.and_then(|close| {
                            let hex: String = chars[at + 3..at + 3 + close].iter().collect();
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        });
                        match (code, close) {
                            (Some(c), Some(close)) => {
                                text.push(c);
                                at += close + 4;
                                continue;
                            }
                            _ => {
                                return Err(error(
                                    at,
                                    "`\\u{...}` holds the hex code of a character, e.g. `\\u{e9}`",
                                ));
                            }
                        }
                    }
                    other => {
                        let shown = other.map_or(String::new(), |c| c.to_string());
                        return Err(error(
                            at,
                            format!(
                                "unknown escape `\\{shown}`: the escapes are \\\" \\\\ \\n \\t \\r \\u{{...}}"
                            ),
                        ));
                    }
                };
                text.push(escaped);
                at += 2;
            }
            Some(&c) => {
                text.push(c);
                at += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tree

/// Something true or false of a record.
#[derive(Debug)]
enum Condition {
    Constant(bool),
    /// A field holding a boolean (or the text `true`/`false`).
    Field(Field),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Compare {
        op: Comparison,
        left: Operand,
        right: Operand,
        /// The comparison as written, for refusals.
        text: Box<str>,
    },
    In {
        value: Operand,
        list: Vec<Literal>,
        negated: bool,
    },
    IsNull(Operand),
    Text {
        test: TextTest,
        value: Operand,
        part: Operand,
    },
    Matches {
        value: Operand,
        regex: Regex,
    },
}

#[derive(Debug, Clone, Copy)]
enum TextTest {
    Contains,
    StartsWith,
    EndsWith,
}

/// Something that has a value in a record.
#[derive(Debug)]
enum Operand {
    Literal(Literal),
    Field(Field),
    Len(Box<Operand>),
    Lower(Box<Operand>),
    Upper(Box<Operand>),
}

/// A value written in the expression (or in a `validate` bound), with what it reads as
/// worked out once.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    value: Value,
    /// What a string literal reads as in time, if anything.
    time: Option<TimeKey>,
    /// As written, for messages.
    text: String,
}

impl Literal {
    /// A literal of the given value (text as it is: `"2024-01-01"` also reads as a date).
    pub fn new(value: Value) -> Literal {
        let time = match &value {
            Value::String(text) => read_time(text),
            _ => None,
        };
        let text = match &value {
            Value::String(text) => format!("{text:?}"),
            Value::Null => "null".into(),
            other => other.to_text().unwrap_or_default().into_owned(),
        };
        Literal { value, time, text }
    }

    /// Whether this literal is a number, or text that reads as one.
    pub fn is_number(&self) -> bool {
        number_of(&self.value).is_some()
    }

    /// Whether this literal is a date or timestamp, or text that reads as one.
    pub fn is_time(&self) -> bool {
        self.time.is_some()
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The literal as written (text in quotes).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A field of a record, found by name; `customer.name` also finds `name` in a `customer`
/// object when the record has no field of that name.
#[derive(Debug)]
struct Field {
    name: Box<str>,
    /// Where the field was in the last record it was found in.
    slot: Cell<usize>,
}

impl Field {
    fn new(name: String) -> Field {
        Field {
            name: name.into(),
            slot: Cell::new(0),
        }
    }

    fn find<'r>(&self, record: &'r Record) -> Option<&'r Value> {
        let slot = self.slot.get();
        if let Some((name, value)) = record.entry(slot)
            && **name == *self.name
        {
            return Some(value);
        }
        for (index, (name, value)) in record.iter().enumerate() {
            if **name == *self.name {
                self.slot.set(index);
                return Some(value);
            }
        }
        self.find_nested(record)
    }

    fn find_nested<'r>(&self, record: &'r Record) -> Option<&'r Value> {
        let mut parts = self.name.split('.');
        let mut value = record.get(parts.next()?)?;
        let mut nested = false;
        for part in parts {
            let Value::Object(object) = value else {
                return None;
            };
            value = object.get(part)?;
            nested = true;
        }
        nested.then_some(value)
    }

    fn missing(&self) -> Refusal {
        Refusal {
            field: Some(self.name.to_string()),
            reason: format!(
                "`{}`: the record has no such field (test `{} != null` first where it may be absent)",
                self.name, self.name
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser<'c> {
    chars: &'c [char],
    tokens: Vec<Spanned>,
    next: usize,
}

/// A parsed piece and the characters it spans.
struct Parsed {
    piece: Piece,
    start: usize,
    end: usize,
}

enum Piece {
    Condition(Condition),
    Operand(Operand),
}

/// Function names, for suggestions.
const FUNCTIONS: [&str; 8] = [
    "is_null",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "len",
    "lower",
    "upper",
];

impl<'c> Parser<'c> {
    fn peek(&self) -> &Spanned {
        &self.tokens[self.next]
    }

    fn advance(&mut self) -> Spanned {
        let token = self.tokens[self.next].clone();
        if token.token != Token::End {
            self.next += 1;
        }
        token
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.chars[start..end].iter().collect()
    }

    /// Pratt loop: `||` binds loosest, then `&&`, then comparisons and `in`.
    fn expression(&mut self, min_power: u8) -> Result<Parsed, ParseError> {
        let mut left = self.prefix()?;
        loop {
            let next = self.peek().clone();
            let power = match &next.token {
                Token::Or => 1,
                Token::And => 3,
                Token::Compare(_) => 5,
                Token::Word(word) if word == "in" || word == "not" => 5,
                _ => break,
            };
            if power < min_power {
                break;
            }
            self.advance();
            left = match &next.token {
                Token::Or | Token::And => {
                    let right = self.operand_after(&next, power + 1)?;
                    let (start, end) = (left.start, right.end);
                    let (left, right) = (self.condition(left)?, self.condition(right)?);
                    let piece = if next.token == Token::Or {
                        Condition::Or(Box::new(left), Box::new(right))
                    } else {
                        Condition::And(Box::new(left), Box::new(right))
                    };
                    Parsed {
                        piece: Piece::Condition(piece),
                        start,
                        end,
                    }
                }
                Token::Compare(op) => {
                    let right = self.operand_after(&next, power + 1)?;
                    self.comparison(*op, left, right)?
                }
                Token::Word(word) => self.membership(left, word == "not", &next)?,
                _ => unreachable!("only the tokens matched above get here"),
            };
            if let Some(chained) = self.peek_comparison() {
                return Err(error(
                    chained,
                    "comparisons do not chain: join them with `&&`, e.g. `a < b && b < c`",
                ));
            }
        }
        Ok(left)
    }

    /// Where a comparison or `in` follows a comparison just parsed.
    fn peek_comparison(&self) -> Option<usize> {
        let next = self.peek();
        matches!(&next.token, Token::Compare(_)).then_some(next.start)
    }

    fn operand_after(&mut self, operator: &Spanned, power: u8) -> Result<Parsed, ParseError> {
        let next = self.peek();
        if matches!(
            next.token,
            Token::End
                | Token::And
                | Token::Or
                | Token::Compare(_)
                | Token::Close
                | Token::CloseList
                | Token::Comma
        ) {
            return Err(error(
                next.start,
                format!("expected a value after {}", operator.token),
            ));
        }
        self.expression(power)
    }

    fn prefix(&mut self) -> Result<Parsed, ParseError> {
        let token = self.advance();
        let start = token.start;
        let operand = |operand: Operand, end: usize| Parsed {
            piece: Piece::Operand(operand),
            start,
            end,
        };
        let literal =
            |value: Value, end: usize| operand(Operand::Literal(Literal::new(value)), end);
        Ok(match token.token {
            Token::Not => {
                // `!` covers the comparison after it: `!a == b` is `!(a == b)`.
                let inner = self.operand_after(&token, 5)?;
                let end = inner.end;
                Parsed {
                    piece: Piece::Condition(Condition::Not(Box::new(self.condition(inner)?))),
                    start,
                    end,
                }
            }
            Token::Open => {
                let inner = self.operand_after(&token, 0)?;
                let close = self.advance();
                if close.token != Token::Close {
                    return Err(error(
                        close.start,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            start + 1,
                            close.token
                        ),
                    ));
                }
                Parsed {
                    piece: inner.piece,
                    start,
                    end: close.end,
                }
            }
            Token::Str(text) => literal(Value::String(Text::from(text)), token.end),
            Token::Number(number) => literal(number_literal(&number), token.end),
            Token::Minus => {
                let number = self.advance();
                let Token::Number(digits) = number.token else {
                    return Err(error(start, "`-` goes only before a number, as in `-5`"));
                };
                literal(number_literal(&format!("-{digits}")), number.end)
            }
            Token::Quoted(name) => operand(Operand::Field(Field::new(name)), token.end),
            Token::Word(word) => match word.as_str() {
                "true" => literal(Value::Bool(true), token.end),
                "false" => literal(Value::Bool(false), token.end),
                "null" => literal(Value::Null, token.end),
                "in" | "not" => {
                    return Err(error(
                        start,
                        format!(
                            "expected a value before `{word}` (a field named `{word}` goes in backticks)"
                        ),
                    ));
                }
                _ if self.peek().token == Token::Open => return self.call(word, start),
                _ => operand(Operand::Field(Field::new(word)), token.end),
            },
            other => {
                return Err(error(start, format!("expected a value, found {other}")));
            }
        })
    }

    fn call(&mut self, name: String, start: usize) -> Result<Parsed, ParseError> {
        let open = self.advance();
        let mut arguments = Vec::new();
        if self.peek().token == Token::Close {
            self.advance();
        } else {
            loop {
                arguments.push(self.operand_after(&open, 0)?);
                let next = self.advance();
                match next.token {
                    Token::Comma => {}
                    Token::Close => break,
                    other => {
                        return Err(error(
                            next.start,
                            format!("expected `,` or `)` in the call of `{name}`, found {other}"),
                        ));
                    }
                }
            }
        }
        let end = self.tokens[self.next - 1].end;
        let wanted = match name.as_str() {
            "is_null" | "len" | "lower" | "upper" => 1,
            "contains" | "starts_with" | "ends_with" | "matches" => 2,
            _ => {
                let nearest = FUNCTIONS
                    .iter()
                    .min_by_key(|f| strsim::levenshtein(f, &name))
                    .filter(|f| strsim::levenshtein(f, &name) <= 2);
                let hint = match nearest {
                    Some(nearest) => format!("did you mean `{nearest}`?"),
                    None => format!("the functions are {}", FUNCTIONS.join(", ")),
                };
                return Err(error(start, format!("unknown function `{name}`: {hint}")));
            }
        };
        if arguments.len() != wanted {
            return Err(error(
                start,
                format!(
                    "`{name}` takes {wanted} argument{}, not {}",
                    if wanted == 1 { "" } else { "s" },
                    arguments.len()
                ),
            ));
        }
        let mut arguments = arguments.into_iter();
        let first = self.operand(arguments.next().expect("counted"))?;
        let second = arguments.next();
        let piece = match (name.as_str(), second) {
            ("is_null", _) => Piece::Condition(Condition::IsNull(first)),
            ("len", _) => Piece::Operand(Operand::Len(Box::new(first))),
            ("lower", _) => Piece::Operand(Operand::Lower(Box::new(first))),
            ("upper", _) => Piece::Operand(Operand::Upper(Box::new(first))),
            ("matches", Some(pattern)) => {
                let at = pattern.start;
                let Piece::Operand(Operand::Literal(Literal {
                    value: Value::String(pattern),
                    ..
                })) = pattern.piece
                else {
                    return Err(error(
                        at,
                        "`matches` takes its pattern as a string literal, e.g. `matches(code, \"^[A-Z]{3}$\")`",
                    ));
                };
                let regex = Regex::new(&pattern).map_err(|e| {
                    error(
                        at,
                        format!(
                            "\"{pattern}\" is not a valid regular expression: {}",
                            regex_problem(&e)
                        ),
                    )
                })?;
                Piece::Condition(Condition::Matches {
                    value: first,
                    regex,
                })
            }
            (name, Some(part)) => {
                let test = match name {
                    "contains" => TextTest::Contains,
                    "starts_with" => TextTest::StartsWith,
                    _ => TextTest::EndsWith,
                };
                Piece::Condition(Condition::Text {
                    test,
                    value: first,
                    part: self.operand(part)?,
                })
            }
            (_, None) => unreachable!("two-argument functions were counted"),
        };
        Ok(Parsed { piece, start, end })
    }

    fn comparison(
        &mut self,
        op: Comparison,
        left: Parsed,
        right: Parsed,
    ) -> Result<Parsed, ParseError> {
        let (start, end) = (left.start, right.end);
        let text = self.text(start, end).into_boxed_str();
        let (left, right) = (self.operand(left)?, self.operand(right)?);
        let is_null = |operand: &Operand| {
            matches!(
                operand,
                Operand::Literal(Literal {
                    value: Value::Null,
                    ..
                })
            )
        };
        let condition = match (is_null(&left), is_null(&right)) {
            (false, false) => Condition::Compare {
                op,
                left,
                right,
                text,
            },
            (true, true) => Condition::Constant(op == Comparison::Eq),
            (left_null, _) => {
                let other = if left_null { right } else { left };
                match op {
                    Comparison::Eq => Condition::IsNull(other),
                    Comparison::Ne => Condition::Not(Box::new(Condition::IsNull(other))),
                    _ => {
                        return Err(error(
                            start,
                            format!(
                                "null has no order: `{}` compares with null only by `==` or `!=`",
                                text
                            ),
                        ));
                    }
                }
            }
        };
        Ok(Parsed {
            piece: Piece::Condition(condition),
            start,
            end,
        })
    }

    fn membership(
        &mut self,
        left: Parsed,
        negated: bool,
        keyword: &Spanned,
    ) -> Result<Parsed, ParseError> {
        if negated {
            let next = self.advance();
            if next.token != Token::Word("in".into()) {
                return Err(error(
                    keyword.start,
                    "expected `in` after `not` (write `!` before a condition to negate it)",
                ));
            }
        }
        let open = self.advance();
        if open.token != Token::OpenList {
            return Err(error(
                open.start,
                format!(
                    "expected a list after `in`, e.g. `[\"a\", \"b\"]`, found {}",
                    open.token
                ),
            ));
        }
        let mut list = Vec::new();
        loop {
            if self.peek().token == Token::CloseList {
                self.advance();
                break;
            }
            let item = self.prefix()?;
            match item.piece {
                Piece::Operand(Operand::Literal(literal)) if literal.value != Value::Null => {
                    list.push(literal)
                }
                Piece::Operand(Operand::Literal(_)) => {
                    return Err(error(
                        item.start,
                        "null is in no list: test it with `is_null(...)` or `== null`",
                    ));
                }
                _ => {
                    return Err(error(
                        item.start,
                        "a list holds only literals: text in quotes, numbers, true or false",
                    ));
                }
            }
            let next = self.advance();
            match next.token {
                Token::Comma => {}
                Token::CloseList => break,
                other => {
                    return Err(error(
                        next.start,
                        format!("expected `,` or `]` in the list, found {other}"),
                    ));
                }
            }
        }
        let end = self.tokens[self.next - 1].end;
        let start = left.start;
        Ok(Parsed {
            piece: Piece::Condition(Condition::In {
                value: self.operand(left)?,
                list,
                negated,
            }),
            start,
            end,
        })
    }

    /// `parsed` where a condition is needed: a field or `true`/`false` will do, a value will
    /// not.
    fn condition(&self, parsed: Parsed) -> Result<Condition, ParseError> {
        match parsed.piece {
            Piece::Condition(condition) => Ok(condition),
            Piece::Operand(Operand::Field(field)) => Ok(Condition::Field(field)),
            Piece::Operand(Operand::Literal(Literal {
                value: Value::Bool(b),
                ..
            })) => Ok(Condition::Constant(b)),
            Piece::Operand(_) => {
                let text = self.text(parsed.start, parsed.end);
                Err(error(
                    parsed.start,
                    format!(
                        "`{text}` is a value, not a condition: compare it, e.g. `{text} == ...`"
                    ),
                ))
            }
        }
    }

    /// `parsed` where a value is needed.
    fn operand(&self, parsed: Parsed) -> Result<Operand, ParseError> {
        match parsed.piece {
            Piece::Operand(operand) => Ok(operand),
            Piece::Condition(_) => {
                let text = self.text(parsed.start, parsed.end);
                Err(error(
                    parsed.start,
                    format!(
                        "`{text}` is a condition, not a value: join conditions with `&&` or `||`"
                    ),
                ))
            }
        }
    }

    /// What is wrong with `token` coming after a complete expression.
    fn unexpected_after_value(&self, token: &Spanned) -> ParseError {
        let message = match &token.token {
            Token::Word(word) if word.eq_ignore_ascii_case("and") => {
                "write `&&` for \"and\"".into()
            }
            Token::Word(word) if word.eq_ignore_ascii_case("or") => "write `||` for \"or\"".into(),
            Token::Close => "this `)` has no `(` before it".into(),
            other => {
                format!("expected an operator (`&&`, `||`, `==`, `<`, `in`, ...), found {other}")
            }
        };
        error(token.start, message)
    }
}

/// The last line of a regex error (the line that says what is wrong).
pub(crate) fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(&text)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// An integer when it fits, else an exact decimal.
fn number_literal(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(integer) if !text.contains('.') => Value::Integer(integer),
        _ => Value::Decimal(Text::from(text)),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// An operand's value in a record.
enum Evaluated<'a> {
    Missing(&'a Field),
    Value(Cow<'a, Value>, Option<&'a TimeKey>),
}

impl Operand {
    fn evaluate<'a>(&'a self, record: &'a Record) -> Evaluated<'a> {
        match self {
            Operand::Literal(literal) => {
                Evaluated::Value(Cow::Borrowed(&literal.value), literal.time.as_ref())
            }
            Operand::Field(field) => match field.find(record) {
                Some(value) => Evaluated::Value(Cow::Borrowed(value), None),
                None => Evaluated::Missing(field),
            },
            Operand::Len(inner) => inner.map(record, |value| match value {
                Value::Null => Value::Null,
                Value::String(text) | Value::Decimal(text) => {
                    Value::Integer(text.chars().count() as i64)
                }
                Value::Array(items) => Value::Integer(items.len() as i64),
                Value::Object(fields) => Value::Integer(fields.len() as i64),
                other => Value::Integer(other.to_text().map_or(0, |t| t.chars().count()) as i64),
            }),
            Operand::Lower(inner) => inner.map(record, |value| match value.to_text() {
                Some(text) => Value::String(Text::from(text.to_lowercase())),
                None => Value::Null,
            }),
            Operand::Upper(inner) => inner.map(record, |value| match value.to_text() {
                Some(text) => Value::String(Text::from(text.to_uppercase())),
                None => Value::Null,
            }),
        }
    }

    fn map<'a>(&'a self, record: &'a Record, f: impl FnOnce(&Value) -> Value) -> Evaluated<'a> {
        match self.evaluate(record) {
            Evaluated::Value(value, _) => Evaluated::Value(Cow::Owned(f(&value)), None),
            missing => missing,
        }
    }

    /// How a refusal names this operand: the field, or the text of the value.
    fn field_name(&self) -> Option<&str> {
        match self {
            Operand::Field(field) => Some(&field.name),
            Operand::Len(inner) | Operand::Lower(inner) | Operand::Upper(inner) => {
                inner.field_name()
            }
            Operand::Literal(_) => None,
        }
    }
}

impl Condition {
    fn test(&self, record: &Record) -> Result<bool, Refusal> {
        match self {
            Condition::Constant(b) => Ok(*b),
            Condition::Field(field) => match field.find(record) {
                None => Err(field.missing()),
                Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(Value::String(text)) if text == "true" => Ok(true),
                Some(Value::String(text)) if text == "false" => Ok(false),
                Some(other) => Err(Refusal {
                    field: Some(field.name.to_string()),
                    reason: format!(
                        "`{}`: `{}` is not true or false",
                        field.name,
                        other.to_text().unwrap_or_default()
                    ),
                }),
            },
            Condition::Not(inner) => Ok(!inner.test(record)?),
            Condition::And(left, right) => Ok(left.test(record)? && right.test(record)?),
            Condition::Or(left, right) => Ok(left.test(record)? || right.test(record)?),
            Condition::Compare {
                op,
                left,
                right,
                text,
            } => {
                let (a, a_time) = present(left.evaluate(record))?;
                let (b, b_time) = present(right.evaluate(record))?;
                match compare(&a, a_time, &b, b_time) {
                    Compared::Null => Ok(false),
                    Compared::Order(order) => Ok(match op {
                        Comparison::Eq => order == Ordering::Equal,
                        Comparison::Ne => order != Ordering::Equal,
                        Comparison::Lt => order == Ordering::Less,
                        Comparison::Le => order != Ordering::Greater,
                        Comparison::Gt => order == Ordering::Greater,
                        Comparison::Ge => order != Ordering::Less,
                    }),
                    Compared::Unlike(_, _) if *op == Comparison::Eq => Ok(false),
                    Compared::Unlike(_, _) if *op == Comparison::Ne => Ok(true),
                    Compared::Unlike(side, expected) => {
                        let (operand, value) = match side {
                            Side::Left => (left, &*a),
                            Side::Right => (right, &*b),
                        };
                        Err(unorderable(operand.field_name(), value, expected, text))
                    }
                }
            }
            Condition::In {
                value,
                list,
                negated,
            } => {
                let (value, _) = present(value.evaluate(record))?;
                if *value == Value::Null {
                    return Ok(false);
                }
                let found = list.iter().any(|literal| {
                    matches!(
                        compare(&value, None, &literal.value, literal.time.as_ref()),
                        Compared::Order(Ordering::Equal)
                    )
                });
                Ok(found != *negated)
            }
            Condition::IsNull(operand) => Ok(match operand.evaluate(record) {
                Evaluated::Missing(_) => true,
                Evaluated::Value(value, _) => *value == Value::Null,
            }),
            Condition::Text { test, value, part } => {
                let (value, _) = present(value.evaluate(record))?;
                let (part, _) = present(part.evaluate(record))?;
                let (Some(value), Some(part)) = (value.to_text(), part.to_text()) else {
                    return Ok(false);
                };
                Ok(match test {
                    TextTest::Contains => value.contains(&*part),
                    TextTest::StartsWith => value.starts_with(&*part),
                    TextTest::EndsWith => value.ends_with(&*part),
                })
            }
            Condition::Matches { value, regex } => {
                let (value, _) = present(value.evaluate(record))?;
                Ok(value.to_text().is_some_and(|text| regex.is_match(&text)))
            }
        }
    }
}

/// The value, or the refusal of a record that lacks the field.
fn present(evaluated: Evaluated<'_>) -> Result<(Cow<'_, Value>, Option<&TimeKey>), Refusal> {
    match evaluated {
        Evaluated::Missing(field) => Err(field.missing()),
        Evaluated::Value(value, time) => Ok((value, time)),
    }
}

fn unorderable(
    field: Option<&str>,
    value: &Value,
    expected: Expected,
    comparison: &str,
) -> Refusal {
    let shown = value.to_text().unwrap_or_default();
    let what = match expected {
        Expected::Number => format!("`{shown}` is not a number"),
        Expected::Time => format!("`{shown}` is not a date or timestamp (ISO 8601)"),
        Expected::Order => format!("`{shown}` has no order with the other side"),
    };
    Refusal {
        field: field.map(str::to_string),
        reason: match field {
            Some(field) => format!("`{field}`: {what}, in `{comparison}`"),
            None => format!("{what}, in `{comparison}`"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing values

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// What the side that did not fit should have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Number,
    Time,
    Order,
}

/// How two values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compared {
    /// One is null: every comparison is false.
    Null,
    Order(Ordering),
    /// Of kinds that differ, or have no order: not equal, and not ordered.
    Unlike(Side, Expected),
}

/// Compares two values; `a_time`/`b_time` are what a literal reads as in time, worked out at
/// parse time.
fn compare(a: &Value, a_time: Option<&TimeKey>, b: &Value, b_time: Option<&TimeKey>) -> Compared {
    use Value::*;
    match (a, b) {
        (Null, _) | (_, Null) => Compared::Null,
        (String(x), String(y)) => {
            let time = match (a_time, b_time) {
                (Some(x_time), None) => read_time(y).map(|y_time| cmp_time(x_time, &y_time)),
                (None, Some(y_time)) => read_time(x).map(|x_time| cmp_time(&x_time, y_time)),
                _ => None,
            };
            Compared::Order(time.unwrap_or_else(|| x.as_str().cmp(y.as_str())))
        }
        (Integer(_) | Float(_) | Decimal(_), _) | (_, Integer(_) | Float(_) | Decimal(_)) => {
            match (number_of(a), number_of(b)) {
                (Some(x), Some(y)) => match cmp_numbers(x, y) {
                    Some(order) => Compared::Order(order),
                    None => Compared::Unlike(Side::Left, Expected::Order),
                },
                (None, _) => Compared::Unlike(Side::Left, Expected::Number),
                (_, None) => Compared::Unlike(Side::Right, Expected::Number),
            }
        }
        (Timestamp(_) | DateTime(_) | Date(_), _) | (_, Timestamp(_) | DateTime(_) | Date(_)) => {
            let x = a_time.cloned().or_else(|| time_of(a));
            let y = b_time.cloned().or_else(|| time_of(b));
            match (x, y) {
                (Some(x), Some(y)) => Compared::Order(cmp_time(&x, &y)),
                (None, _) => Compared::Unlike(Side::Left, Expected::Time),
                (_, None) => Compared::Unlike(Side::Right, Expected::Time),
            }
        }
        (Bool(x), Bool(y)) => Compared::Order(x.cmp(y)),
        (Bool(flag), String(text)) => match bool_text(text) {
            Some(other) => Compared::Order(flag.cmp(&other)),
            None => Compared::Unlike(Side::Right, Expected::Order),
        },
        (String(text), Bool(flag)) => match bool_text(text) {
            Some(other) => Compared::Order(other.cmp(flag)),
            None => Compared::Unlike(Side::Left, Expected::Order),
        },
        (x, y) if x == y => Compared::Order(Ordering::Equal),
        _ => Compared::Unlike(Side::Left, Expected::Order),
    }
}

fn bool_text(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// How `value` compares with `literal` (a `validate` bound or list item): `None` for null.
pub fn compare_with_literal(
    value: &Value,
    literal: &Literal,
) -> Option<Result<Ordering, Expected>> {
    match compare(value, None, &literal.value, literal.time.as_ref()) {
        Compared::Null => None,
        Compared::Order(order) => Some(Ok(order)),
        Compared::Unlike(_, expected) => Some(Err(expected)),
    }
}

/// A number as read from a value.
#[derive(Debug, Clone, Copy)]
enum Number<'a> {
    Integer(i64),
    /// Plain decimal text: `-?[0-9]+(\.[0-9]+)?`, a `+` allowed.
    Decimal(&'a str),
    Float(f64),
}

/// A number value, or text that reads as one.
fn number_of(value: &Value) -> Option<Number<'_>> {
    match value {
        Value::Integer(i) => Some(Number::Integer(*i)),
        Value::Float(f) => Some(Number::Float(*f)),
        Value::Decimal(text) => Some(if plain_decimal(text).is_some() {
            Number::Decimal(text)
        } else {
            Number::Float(text.parse().ok()?)
        }),
        Value::String(text) => plain_decimal(text).map(|_| Number::Decimal(text)),
        _ => None,
    }
}

/// A plain decimal's sign, whole digits without leading zeros and fraction without trailing
/// zeros (`-007.50` is `(true, "7", "5")`); zero is never negative.
fn plain_decimal(text: &str) -> Option<(bool, &str, &str)> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return None,
        None => (unsigned, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let zero = whole.is_empty() && fraction.is_empty();
    Some((negative && !zero, whole, fraction))
}

fn cmp_numbers(a: Number<'_>, b: Number<'_>) -> Option<Ordering> {
    let float = |n: Number<'_>| match n {
        Number::Integer(i) => i as f64,
        Number::Float(f) => f,
        Number::Decimal(text) => text.parse().unwrap_or(f64::NAN),
    };
    match (a, b) {
        (Number::Integer(x), Number::Integer(y)) => Some(x.cmp(&y)),
        (Number::Float(_), _) | (_, Number::Float(_)) => float(a).partial_cmp(&float(b)),
        _ => {
            let mut buffers = (itoa::Buffer::new(), itoa::Buffer::new());
            let x = match a {
                Number::Integer(i) => buffers.0.format(i),
                Number::Decimal(text) => text,
                Number::Float(_) => unreachable!("floats compared above"),
            };
            let y = match b {
                Number::Integer(i) => buffers.1.format(i),
                Number::Decimal(text) => text,
                Number::Float(_) => unreachable!("floats compared above"),
            };
            Some(cmp_decimals(x, y))
        }
    }
}

/// Compares two plain decimals exactly, whatever their length.
fn cmp_decimals(a: &str, b: &str) -> Ordering {
    let (Some((a_negative, a_whole, a_fraction)), Some((b_negative, b_whole, b_fraction))) =
        (plain_decimal(a), plain_decimal(b))
    else {
        unreachable!("only plain decimals are compared as text");
    };
    if a_negative != b_negative {
        return if a_negative {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let magnitude = a_whole
        .len()
        .cmp(&b_whole.len())
        .then_with(|| a_whole.cmp(b_whole))
        .then_with(|| a_fraction.cmp(b_fraction));
    if a_negative {
        magnitude.reverse()
    } else {
        magnitude
    }
}

/// A point in time to compare: an instant when its offset is known, else a wall-clock time.
#[derive(Debug, Clone, PartialEq)]
enum TimeKey {
    Instant(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

fn time_of(value: &Value) -> Option<TimeKey> {
    match value {
        Value::Timestamp(at) => Some(TimeKey::Instant(*at)),
        Value::DateTime(at) => Some(TimeKey::Local(*at)),
        Value::Date(day) => Some(TimeKey::Local(day.and_time(chrono::NaiveTime::MIN))),
        Value::String(text) => read_time(text),
        _ => None,
    }
}

/// ISO 8601 text: RFC 3339 with an offset, a date and time without one, or a date.
fn read_time(text: &str) -> Option<TimeKey> {
    // Cheap test first: every form starts `YYYY-`.
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || !bytes[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(TimeKey::Instant(at));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(TimeKey::Local(at));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|day| TimeKey::Local(day.and_time(chrono::NaiveTime::MIN)))
}

fn cmp_time(a: &TimeKey, b: &TimeKey) -> Ordering {
    let local = |key: &TimeKey| match key {
        TimeKey::Instant(at) => at.naive_local(),
        TimeKey::Local(at) => *at,
    };
    match (a, b) {
        (TimeKey::Instant(x), TimeKey::Instant(y)) => x.cmp(y),
        _ => local(a).cmp(&local(b)),
    }
}

/// Whether `value` is, or is text that reads as, a number (for `validate`'s `type`).
pub fn reads_as_number(value: &Value) -> bool {
    number_of(value).is_some()
        || matches!(value, Value::String(text) if text.parse::<f64>().is_ok_and(f64::is_finite) && text.bytes().any(|b| b.is_ascii_digit()))
}

/// Whether `value` is, or is text that reads as, an exact decimal number.
pub fn reads_as_decimal(value: &Value) -> bool {
    match value {
        Value::Integer(_) => true,
        Value::Decimal(text) | Value::String(text) => plain_decimal(text).is_some(),
        _ => false,
    }
}

/// Whether `value` is, or is text that reads as, a date and time (ISO 8601, an offset or not).
pub fn reads_as_timestamp(value: &Value) -> bool {
    match value {
        Value::Timestamp(_) | Value::DateTime(_) => true,
        Value::String(text) => {
            DateTime::parse_from_rfc3339(text).is_ok()
                || ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok())
        }
        _ => false,
    }
}

/// Whether `value` is, or is text that reads as, a date (`2024-08-01`).
pub fn reads_as_date(value: &Value) -> bool {
    match value {
        Value::Date(_) => true,
        Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
