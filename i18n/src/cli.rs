//! Command-line argument errors in the run's language (feature `clap`). clap words its errors
//! in English only; the common ones are worded here from the catalog, with clap's usage line.
//! Help (`--help`) stays clap's, in English.

use clap::builder::TypedValueParser as _;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::{Lang, Text, message};

/// The `--lang` a command line gives, read before its arguments are parsed, so that an argument
/// error is worded in it.
pub fn lang_arg(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--lang" {
            return args.next();
        }
        if let Some(v) = a.strip_prefix("--lang=") {
            return Some(v.to_owned());
        }
    }
    None
}

/// A value parser for one of `all`, each named by `name`: anything else is refused as clap's
/// invalid value listing them (worded by [`clap_error`]), not as a parser's English sentence.
pub fn one_of<T: Clone + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(&T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    clap::builder::PossibleValuesParser::new(all.iter().map(name)).try_map(move |s: String| {
        all.iter()
            .find(|v| name(v) == s)
            .cloned()
            .ok_or_else(|| crate::text!("unknown-choice", what = "", value = s, known = ""))
    })
}

/// Prints an argument error (or help) of this process's command line and gives its exit code:
/// worded in the run's language (`--lang`, else the locale's) where the catalog words it, else
/// as clap prints it (help and version exit 0, errors 2, as clap's).
pub fn argument_error(e: clap::Error) -> std::process::ExitCode {
    // Lossy: an argument error may well be a name that is not UTF-8 (a GBK file name).
    let args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let lang = Lang::from_arg_or_env(lang_arg(args).as_deref());
    match clap_error(&e, lang) {
        Some(text) => {
            eprintln!("{text}");
            std::process::ExitCode::from(2)
        }
        None => e.exit(),
    }
}

/// `e` worded in `lang`, with the usage line and where to find help; `None` where clap's own
/// output is what to show: in English, for help and version, and for kinds the catalog does not
/// word.
pub fn clap_error(e: &clap::Error, lang: Lang) -> Option<String> {
    if lang == Lang::En {
        return None;
    }
    let get = |kind: ContextKind| -> String {
        match e.get(kind) {
            Some(ContextValue::String(s)) => s.clone(),
            Some(ContextValue::Strings(v)) => v.join(", "),
            Some(ContextValue::StyledStr(s)) => s.to_string(),
            Some(ContextValue::StyledStrs(v)) => v
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            Some(ContextValue::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    let arg = get(ContextKind::InvalidArg);
    let value = get(ContextKind::InvalidValue);
    let problem = match e.kind() {
        ErrorKind::ValueValidation => {
            // The value parser's own error: a catalog text where the parser gave one.
            let why = std::error::Error::source(e).map_or_else(String::new, |s| {
                s.downcast_ref::<Text>()
                    .map_or_else(|| s.to_string(), |t| t.in_lang(lang))
            });
            message!(lang, "clap-value", arg = arg, value = value, why = why)
        }
        ErrorKind::InvalidValue => message!(
            lang,
            "clap-choice",
            arg = arg,
            value = value,
            known = get(ContextKind::ValidValue)
        ),
        ErrorKind::UnknownArgument => message!(lang, "clap-unknown-argument", arg = arg),
        ErrorKind::InvalidSubcommand => message!(
            lang,
            "clap-unknown-command",
            command = get(ContextKind::InvalidSubcommand)
        ),
        ErrorKind::MissingRequiredArgument => message!(lang, "clap-missing", args = arg),
        ErrorKind::ArgumentConflict => message!(
            lang,
            "clap-conflict",
            arg = arg,
            prior = get(ContextKind::PriorArg)
        ),
        ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => message!(lang, "clap-value-count", arg = arg),
        _ => return None,
    };
    let mut out = message!(lang, "cli-error", error = problem);
    for suggested in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand] {
        let s = get(suggested);
        if !s.is_empty() {
            out.push('\n');
            out.push_str(&message!(lang, "clap-suggest", similar = s));
        }
    }
    let usage = get(ContextKind::Usage);
    if let Some(rest) = usage.trim().strip_prefix("Usage:") {
        out.push_str("\n\n");
        out.push_str(&message!(lang, "clap-usage", usage = rest.trim()));
    }
    out.push('\n');
    out.push_str(&lang.text("clap-help"));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(name = "tool")]
    struct Args {
        #[arg(long)]
        lang: Option<String>,
        #[arg(long)]
        grid: Option<String>,
        #[arg(long, value_parser = ["csv", "xlsx"])]
        format: Option<String>,
        #[arg(long)]
        period: Option<Period>,
        #[arg(long, value_parser = one_of(&["low", "high"], |s: &&'static str| *s))]
        level: Option<&'static str>,
    }

    #[derive(Clone, Debug)]
    struct Period;

    impl std::str::FromStr for Period {
        type Err = Text;
        fn from_str(s: &str) -> Result<Period, Text> {
            Err(crate::text!("cal-period", value = s))
        }
    }

    fn error(args: &[&str]) -> clap::Error {
        Args::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
            .expect_err("refused")
    }

    #[test]
    fn argument_errors_are_worded_in_chinese_and_left_to_clap_in_english() {
        let zh = |args: &[&str]| clap_error(&error(args), Lang::ZhCn).expect("worded");
        let period = zh(&["--period", "2026-13"]);
        assert!(
            period.starts_with(
                "错误：参数 --period <PERIOD> 的值「2026-13」无效：期间「2026-13」：可写"
            ),
            "{period}"
        );
        assert!(period.ends_with("更多信息请运行 --help"), "{period}");
        let choice = zh(&["--format", "pdf"]);
        assert!(choice.contains("「pdf」无效，可选：csv, xlsx"), "{choice}");
        let level = zh(&["--level", "mid"]);
        assert!(
            level.starts_with("错误：参数 --level <LEVEL> 的值「mid」无效，可选：low, high"),
            "{level}"
        );
        let parsed = Args::try_parse_from(["tool", "--level", "high"]).expect("parses");
        assert_eq!(parsed.level, Some("high"));
        let unknown = zh(&["--gird", "S1"]);
        assert!(
            unknown.starts_with("错误：不认识的参数 --gird"),
            "{unknown}"
        );
        assert!(unknown.contains("相近的有：--grid"), "{unknown}");
        assert!(unknown.contains("\n\n用法：tool "), "{unknown}");
        // English is clap's own, and so is help.
        assert_eq!(clap_error(&error(&["--format", "pdf"]), Lang::En), None);
        assert_eq!(clap_error(&error(&["--help"]), Lang::ZhCn), None);
    }

    #[test]
    fn the_language_is_read_from_the_arguments_before_they_parse() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lang_arg(args(&["x", "--lang", "en", "--bad"])),
            Some("en".into())
        );
        assert_eq!(lang_arg(args(&["x", "--lang=zh-CN"])), Some("zh-CN".into()));
        assert_eq!(lang_arg(args(&["x", "--", "--lang", "en"])), None);
        assert_eq!(lang_arg(args(&["x"])), None);
    }
}
