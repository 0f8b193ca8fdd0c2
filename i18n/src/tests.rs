//! The catalogs against each other: the same messages in every language, each with the same
//! placeholders, and every file parsing cleanly.

use fluent_syntax::ast;

use super::*;
pub(crate) use crate::variables;

/// What is wrong with catalogs given as (file, zh-CN source, en source): a file that does not
/// parse, a message one language has and the other lacks, placeholders that differ, a message
/// defined twice in one language (the bundle would keep only the first).
fn catalog_problems(files: &[(&str, &str, &str)]) -> Vec<String> {
    let ids = |source: &str| -> Vec<String> {
        let resource = fluent_syntax::parser::parse(source).unwrap_or_else(|(r, _)| r);
        resource
            .body
            .iter()
            .filter_map(|e| match e {
                ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    };
    let mut problems = vec![];
    let (mut all_zh, mut all_en) = (vec![], vec![]);
    for (name, zh, en) in files {
        for (lang, source) in [("zh-CN", zh), ("en", en)] {
            if let Err((_, errors)) = fluent_syntax::parser::parse(*source) {
                problems.push(format!("{lang}/{name} does not parse: {errors:?}"));
            }
        }
        let (zh_ids, en_ids) = (ids(zh), ids(en));
        for id in &zh_ids {
            if !en_ids.contains(id) {
                problems.push(format!("en/{name} has no message {id}"));
            } else if variables(zh, id) != variables(en, id) {
                problems.push(format!("{name}: placeholders of {id} differ"));
            }
        }
        for id in &en_ids {
            if !zh_ids.contains(id) {
                problems.push(format!("zh-CN/{name} has no message {id}"));
            }
        }
        all_zh.extend(zh_ids);
        all_en.extend(en_ids);
    }
    for (lang, mut ids) in [("zh-CN", all_zh), ("en", all_en)] {
        ids.sort();
        for pair in ids.windows(2) {
            if pair[0] == pair[1] {
                problems.push(format!("{lang} defines {} twice", pair[0]));
            }
        }
    }
    problems
}

#[test]
fn both_languages_hold_the_same_messages_with_the_same_placeholders_each_once() {
    let files: Vec<(&str, &str, &str)> = CATALOGS[0]
        .iter()
        .zip(CATALOGS[1])
        .map(|((name, zh), (en_name, en))| {
            assert_eq!(*name, en_name, "the catalog files line up");
            (*name, *zh, en)
        })
        .collect();
    assert_eq!(catalog_problems(&files), Vec::<String>::new());
}

#[test]
fn the_catalog_check_catches_what_it_looks_for() {
    let good = ("a.ftl", "x = 一 { $n }\n", "x = one { $n }\n");
    assert!(catalog_problems(&[good]).is_empty());
    let missing = ("a.ftl", "x = 一\ny = 二\n", "x = one\n");
    assert_eq!(catalog_problems(&[missing]), ["en/a.ftl has no message y"]);
    let changed = ("a.ftl", "x = 一 { $n }\n", "x = one { $m }\n");
    assert_eq!(
        catalog_problems(&[changed]),
        ["a.ftl: placeholders of x differ"]
    );
    let twice = ("b.ftl", "x = 二\n", "x = two\n");
    assert_eq!(
        catalog_problems(&[good, twice]),
        ["zh-CN defines x twice", "en defines x twice"]
    );
    let broken = ("a.ftl", "x = { $n\n", "x = one\n");
    assert!(catalog_problems(&[broken])[0].starts_with("zh-CN/a.ftl does not parse"));
    assert_eq!(
        variables("a = { $n ->\n [one] x { $k }\n *[other] y\n}\n", "a"),
        Some(vec!["k".to_owned(), "n".to_owned()])
    );
}

#[test]
fn languages_come_from_tags_and_the_locale_environment() {
    assert_eq!(Lang::from_tag("en-GB"), Lang::En);
    assert_eq!(Lang::from_tag("EN"), Lang::En);
    assert_eq!(Lang::from_tag("zh-Hans-CN"), Lang::ZhCn);
    assert_eq!(Lang::from_tag(""), Lang::ZhCn);
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(Lang::from_locale_vars(env(&[])), Lang::ZhCn);
    assert_eq!(
        Lang::from_locale_vars(env(&[("LANG", "en_US.UTF-8")])),
        Lang::En
    );
    assert_eq!(
        Lang::from_locale_vars(env(&[("LANG", "C.UTF-8")])),
        Lang::ZhCn
    );
    assert_eq!(
        Lang::from_locale_vars(env(&[("LC_ALL", "zh_CN.UTF-8"), ("LANG", "en_US.UTF-8")])),
        Lang::ZhCn
    );
    assert_eq!(
        Lang::from_locale_vars(env(&[("LC_ALL", ""), ("LANG", "en_US.UTF-8")])),
        Lang::En
    );
}

#[test]
fn messages_render_with_parameters_and_list_by_prefix() {
    assert_eq!(Lang::ZhCn.text("level-1"), "街道");
    assert_eq!(Lang::En.text("level-1"), "Street");
    let dash = Lang::ZhCn.messages("level-");
    assert!(dash.len() >= 4, "{dash:?}");
    assert!(
        dash.iter()
            .all(|(id, text)| id.starts_with("level-") && !text.is_empty())
    );
    assert_eq!(Lang::En.text("no-such-message"), "no-such-message");
    assert!(!Lang::En.has("no-such-message"));
}

#[test]
fn durations_take_the_unit_that_fits() {
    assert_eq!(Lang::ZhCn.duration(45_000), "45 秒");
    assert_eq!(Lang::ZhCn.duration(180_000), "3 分钟");
    assert_eq!(Lang::ZhCn.duration(9_000_000), "2.5 小时");
    assert_eq!(Lang::En.duration(129_600_000), "1.5 days");
    assert_eq!(Lang::En.duration(-5), "0 s");
}

#[test]
fn selects_match_the_strings_the_command_lines_pass() {
    // The command lines pass every value as text: a select keys on "true"/"false" and on
    // words, never on numbers (a number key never matches a string).
    let args = |up_to_date: &str| {
        [
            ("file", Value::from("grid.csv")),
            ("rows", Value::from("3")),
            ("what", Value::from("cells")),
            ("changed", Value::from("0")),
            ("up_to_date", Value::from(up_to_date.to_owned())),
        ]
    };
    assert_eq!(
        Lang::En.format("cli-imported", &args("true")),
        "grid.csv: 3 cells rows read, 0 changed (already up to date)"
    );
    assert_eq!(
        Lang::ZhCn.format("cli-imported", &args("true")),
        "grid.csv：读取 3 行网格数据，变更 0 行（已是最新）"
    );
    assert_eq!(
        Lang::En.format("cli-imported", &args("false")),
        "grid.csv: 3 cells rows read, 0 changed"
    );
}

#[test]
fn words_fall_back_to_their_code_and_the_macro_names_its_parameters() {
    assert_eq!(
        Lang::ZhCn.word("state", "closed").as_deref(),
        Some("已销号")
    );
    assert_eq!(
        Lang::ZhCn.word("about", "time zone").as_deref(),
        Some("时区")
    );
    assert_eq!(Lang::ZhCn.word("state", "frozen"), None);
    assert_eq!(Lang::ZhCn.word_or_key("state", "frozen"), "frozen");
    assert_eq!(
        crate::message!(Lang::ZhCn, "cli-stats-users", n = 3),
        "用户            3"
    );
}

/// The message ids the workspace's code names literally: the first string literal of each
/// `say!`, `text!` and `message!` (after its language) and of each `.text(` and `.format(` call
/// whose literal looks like an id (lowercase, with a hyphen).
fn ids_named_in(source: &str) -> Vec<String> {
    const CALLS: [(&str, bool); 5] = [
        ("say!(", false),
        ("text!(", false),
        ("message!(", true),
        (".text(", false),
        (".format(", false),
    ];
    let mut out = vec![];
    for (call, after_comma) in CALLS {
        for (at, _) in source.match_indices(call) {
            let mut rest = source[at + call.len()..].trim_start();
            if after_comma {
                let Some(comma) = rest.find(',') else {
                    continue;
                };
                rest = rest[comma + 1..].trim_start();
            }
            let Some(literal) = rest.strip_prefix('"') else {
                continue;
            };
            let id: String = literal
                .chars()
                .take_while(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'
                })
                .collect();
            if literal[id.len()..].starts_with('"') && id.contains('-') {
                out.push(id);
            }
        }
    }
    out
}

#[test]
fn every_message_the_code_names_is_in_the_catalogs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![];
    let mut dirs: Vec<_> = [
        "server/src",
        "client-sdk/src",
        "client-sdk/ffi/src",
        "i18n/src",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("i18n/src/tests.rs")
            {
                files.push(path);
            }
        }
    }
    let mut named = 0;
    let mut missing = vec![];
    for path in &files {
        let source = std::fs::read_to_string(path).expect("source");
        for id in ids_named_in(&source) {
            named += 1;
            if !Lang::ZhCn.has(&id) {
                missing.push(format!("{}: {id}", path.display()));
            }
        }
    }
    // The scan sees the code: hundreds of ids are named across the workspace.
    assert!(
        named > 200,
        "only {named} ids found; is the scan still reading the sources?"
    );
    assert!(
        missing.is_empty(),
        "named in code but not in the catalogs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_id_scan_reads_each_kind_of_call() {
    let source = r#"
        say!("cli-a", n = 1); text!("store-b"); message!(lang, "cfg-c", x = 2);
        lang.text("about-d"); lang.format("date-e", &[]); say!(not_literal);
        date.format("%Y-%m"); x.text("plain");
    "#;
    let mut ids = ids_named_in(source);
    ids.sort();
    assert_eq!(ids, ["about-d", "cfg-c", "cli-a", "date-e", "store-b"]);
}

#[test]
fn values_from_outside_cannot_break_the_line_they_are_shown_on() {
    let t = crate::text!("store-no-cell", cell = "S1\n\u{1b}[2J");
    assert_eq!(t.to_string(), "grid cell S1\\n\\u{1b}[2J does not exist");
    assert_eq!(t.arg("cell"), Some("S1\\n\\u{1b}[2J"));
    assert_eq!(printable("花园街道 S1"), "花园街道 S1");
}
