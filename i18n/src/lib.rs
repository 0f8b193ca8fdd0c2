//! What people read, in `zh-CN` (the default) and `en`: one set of Fluent catalogs for the
//! device's error codes ([`ErrorCode`]), the server's refusals, the dashboard, the command line,
//! ledgers and reports.
//!
//! The catalogs are `i18n/locales/<lang>/*.ftl`, compiled into the crate. A message's id is
//! stable; its `{ $name }` placeholders are its parameters. The tests fail when a message is
//! missing in either language or the two languages' placeholders differ.
//!
//! ```
//! use patrolsync_i18n::Lang;
//! assert_eq!(Lang::from_tag("zh-Hans-CN"), Lang::ZhCn);
//! assert_eq!(Lang::ZhCn.text("state-reported"), "已上报");
//! assert_eq!(Lang::En.format("ledger-title-period", &[("grid", "S1".into()), ("from", "2026-11-01".into()), ("to", "2026-11-30".into())]),
//!            "S1 · 2026-11-01 – 2026-11-30");
//! ```

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

#[cfg(feature = "clap")]
pub mod cli;
mod error_code;

/// Message `id` in `lang` with its parameters by name, each given as anything `Display`:
/// `message!(Lang::ZhCn, "cli-stats-users", n = 3)`. Values arrive as text, so a select in the
/// catalog keys on words or `true`/`false`, not on numbers.
#[macro_export]
macro_rules! message {
    ($lang:expr, $id:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $lang.format(
            $id,
            &[$((stringify!($name), $crate::Value::from(($value).to_string()))),*],
        )
    };
}

/// A [`Text`]: message `id` with its parameters by name, each given as anything `Display`:
/// `text!("store-no-cell", cell = code)`. Values are made [`printable`]: they often come from
/// a file or a request.
#[macro_export]
macro_rules! text {
    ($id:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::Text::new($id, vec![$((stringify!($name), ($value).to_string())),*])
    };
}

/// A message of the catalog with its parameters, worded when it is read: an error carries one,
/// so the command line shows it in its language and a log or the JSON API in English
/// (`Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    id: &'static str,
    args: Vec<(&'static str, String)>,
}

impl Text {
    /// Message `id` with `args` (name, value), each made [`printable`]. Prefer the [`text!`]
    /// macro.
    pub fn new(id: &'static str, args: Vec<(&'static str, String)>) -> Text {
        let args = args.into_iter().map(|(n, v)| (n, printable(&v))).collect();
        Text { id, args }
    }

    /// The message's id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The parameters, (name, value), in the order given.
    pub fn args(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.args.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// The value of parameter `name`, if given.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message in `lang`.
    pub fn in_lang(&self, lang: Lang) -> String {
        let args: Vec<(&str, Value<'_>)> = self
            .args
            .iter()
            .map(|(n, v)| (*n, Value::from(v.as_str())))
            .collect();
        lang.format(self.id, &args)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.in_lang(Lang::En))
    }
}

/// `value` with its control characters (a newline, an escape sequence) written as escapes
/// (`\n`, `\u{1b}`), so that a value from a file or a request cannot break a line or drive the
/// terminal it is shown on.
pub fn printable(value: &str) -> String {
    if !value.chars().any(char::is_control) {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A message can be an error by itself (a value that does not parse, a setting out of range).
impl std::error::Error for Text {}

pub use error_code::ErrorCode;
/// A value for a placeholder: text or a number (numbers select plural forms).
pub use fluent_bundle::FluentValue as Value;

/// A language with a catalog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Lang {
    /// Simplified Chinese, as read in mainland China: the default.
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English.
    #[serde(rename = "en")]
    En,
}

/// The BCP 47 tags of the languages with a catalog, the default first.
pub const LANGUAGES: [&str; 2] = ["zh-CN", "en"];

/// The catalog files, per language in [`LANGUAGES`] order: (file name, source).
const CATALOGS: [[(&str, &str); 3]; 2] = [
    [
        ("errors.ftl", include_str!("../locales/zh-CN/errors.ftl")),
        ("app.ftl", include_str!("../locales/zh-CN/app.ftl")),
        (
            "problems.ftl",
            include_str!("../locales/zh-CN/problems.ftl"),
        ),
    ],
    [
        ("errors.ftl", include_str!("../locales/en/errors.ftl")),
        ("app.ftl", include_str!("../locales/en/app.ftl")),
        ("problems.ftl", include_str!("../locales/en/problems.ftl")),
    ],
];

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    /// The BCP 47 tag: `zh-CN` or `en`.
    pub fn tag(self) -> &'static str {
        LANGUAGES[self.index()]
    }

    /// The language for a BCP 47 tag or a locale name (`en-GB`, `en_US.UTF-8`, `zh-Hans-CN`),
    /// as a phone falls back: English for `en*`, Chinese for everything else, the empty tag
    /// included.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("en")) {
            Lang::En
        } else {
            Lang::ZhCn
        }
    }

    /// The language of a locale environment as a command line reads it: the first of
    /// `LC_ALL`, `LC_MESSAGES` and `LANG` that is set and names a language (`C` and `POSIX`
    /// name none); Chinese when none does.
    pub fn from_locale_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .filter_map(get)
            .map(|v| v.trim().to_owned())
            .find(|v| !v.is_empty() && v != "C" && v != "POSIX" && !v.starts_with("C."))
            .map_or(Lang::ZhCn, |v| Lang::from_tag(&v))
    }

    /// The language a command line was given (`--lang`), else its locale environment's
    /// ([`Lang::from_locale_vars`]).
    pub fn from_arg_or_env(arg: Option<&str>) -> Lang {
        arg.map_or_else(
            || Lang::from_locale_vars(|name| std::env::var(name).ok()),
            Lang::from_tag,
        )
    }

    fn index(self) -> usize {
        match self {
            Lang::ZhCn => 0,
            Lang::En => 1,
        }
    }

    /// The message `id` without parameters. A missing id renders as itself (the catalog tests
    /// keep every id the code uses in both languages).
    pub fn text(self, id: &str) -> String {
        self.format(id, &[])
    }

    /// The message `id` with its parameters.
    pub fn format(self, id: &str, args: &[(&str, Value<'_>)]) -> String {
        let bundle = &bundles()[self.index()];
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return id.to_owned();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = vec![];
        bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors)
            .into_owned()
    }

    /// A duration in words, to the unit that fits: `45 秒`, `3 分钟`, `2.5 小时`, `1.5 天`.
    pub fn duration(self, ms: i64) -> String {
        let secs = ms.max(0) as f64 / 1000.0;
        let (id, n) = if secs < 60.0 {
            ("dur-s", format!("{secs:.0}"))
        } else if secs < 3600.0 {
            ("dur-min", format!("{:.0}", secs / 60.0))
        } else if secs < 86_400.0 {
            ("dur-h", format!("{:.1}", secs / 3600.0))
        } else {
            ("dur-d", format!("{:.1}", secs / 86_400.0))
        };
        self.format(id, &[("n", Value::from(n))])
    }

    /// Every message whose id starts with `prefix`, each placeholder left as `{name}` for a
    /// page to fill, as (id, text) in catalog order.
    pub fn placeholder_messages(self, prefix: &str) -> Vec<(String, String)> {
        message_ids(self)
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .map(|id| {
                let names = placeholders(self, &id);
                let args: Vec<(&str, Value<'_>)> = names
                    .iter()
                    .map(|n| (n.as_str(), Value::from(format!("{{{n}}}"))))
                    .collect();
                let text = self.format(&id, &args);
                (id, text)
            })
            .collect()
    }

    /// The word for `key` of vocabulary `prefix` (`state` and `closed` → 已销号; a space in
    /// `key` reads as `_`), if the catalog has one.
    pub fn word(self, prefix: &str, key: &str) -> Option<String> {
        let id = format!("{prefix}-{}", key.replace(' ', "_"));
        self.has(&id).then(|| self.text(&id))
    }

    /// The word for `key` of vocabulary `prefix`, or `key` itself where the catalog has none (a
    /// code a newer peer sent shows as it is).
    pub fn word_or_key(self, prefix: &str, key: &str) -> String {
        self.word(prefix, key).unwrap_or_else(|| key.to_owned())
    }

    /// Whether the catalog has a message `id`.
    pub fn has(self, id: &str) -> bool {
        bundles()[self.index()].has_message(id)
    }

    /// Every message whose id starts with `prefix`, without parameters filled in, as
    /// (id, text) in catalog order: what a page renders itself (the dashboard's strings).
    pub fn messages(self, prefix: &str) -> Vec<(String, String)> {
        message_ids(self)
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .map(|id| {
                let text = self.text(&id);
                (id, text)
            })
            .collect()
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

/// The ids of a language's messages, in catalog order.
fn message_ids(lang: Lang) -> Vec<String> {
    CATALOGS[lang.index()]
        .iter()
        .flat_map(|(_, source)| {
            let resource = fluent_syntax::parser::parse(*source).unwrap_or_else(|(r, _)| r);
            resource
                .body
                .into_iter()
                .filter_map(|entry| match entry {
                    fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The variables message `id` uses in `lang`'s catalogs, sorted.
fn placeholders(lang: Lang, id: &str) -> Vec<String> {
    CATALOGS[lang.index()]
        .iter()
        .find_map(|(_, source)| variables(source, id))
        .unwrap_or_default()
}

/// The variables a pattern uses, through select expressions.
fn pattern_variables(pattern: &fluent_syntax::ast::Pattern<&str>, out: &mut Vec<String>) {
    use fluent_syntax::ast::{Expression, InlineExpression, PatternElement};
    for element in &pattern.elements {
        let PatternElement::Placeable { expression } = element else {
            continue;
        };
        match expression {
            Expression::Inline(InlineExpression::VariableReference { id }) => {
                out.push(id.name.to_owned())
            }
            Expression::Select { selector, variants } => {
                if let InlineExpression::VariableReference { id } = selector {
                    out.push(id.name.to_owned());
                }
                for v in variants {
                    pattern_variables(&v.value, out);
                }
            }
            Expression::Inline(_) => {}
        }
    }
}

/// The variables catalog message `id` uses in `source`, sorted; None when `source` has no such
/// message.
pub(crate) fn variables(source: &str, id: &str) -> Option<Vec<String>> {
    let resource = fluent_syntax::parser::parse(source).unwrap_or_else(|(r, _)| r);
    resource.body.iter().find_map(|entry| match entry {
        fluent_syntax::ast::Entry::Message(m) if m.id.name == id => {
            let mut vars = vec![];
            pattern_variables(m.value.as_ref()?, &mut vars);
            vars.sort();
            vars.dedup();
            Some(vars)
        }
        _ => None,
    })
}

fn bundles() -> &'static [FluentBundle<FluentResource>; 2] {
    static BUNDLES: OnceLock<[FluentBundle<FluentResource>; 2]> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let make = |i: usize| {
            let lang = LANGUAGES[i].parse().unwrap_or_default();
            let mut bundle = FluentBundle::new_concurrent(vec![lang]);
            // Plain text: no Unicode isolation marks around parameters.
            bundle.set_use_isolating(false);
            for (_, source) in CATALOGS[i] {
                // The catalogs are part of the build and checked by the tests; a syntax error
                // would leave the affected messages out, and those tests fail.
                let resource =
                    FluentResource::try_new(source.to_owned()).unwrap_or_else(|(r, _)| r);
                let _ = bundle.add_resource(resource);
            }
            bundle
        };
        [make(0), make(1)]
    })
}

#[cfg(test)]
mod tests;
