//! The catalogs against each other: the same messages in every language, each with the same
//! placeholders, and every file parsing cleanly.

use fluent_syntax::ast;

use super::*;
pub(crate) use crate::variables;

#[test]
fn every_catalog_parses_and_both_languages_hold_the_same_messages_and_placeholders() {
    for (file, (zh_name, zh)) in CATALOGS[0].iter().enumerate() {
        let (en_name, en) = CATALOGS[1][file];
        assert_eq!(*zh_name, en_name, "the catalog files line up");
        for (lang, source) in [("zh-CN", *zh), ("en", en)] {
            fluent_syntax::parser::parse(source)
                .unwrap_or_else(|(_, errors)| panic!("{lang}/{en_name}: {errors:?}"));
        }
        let ids = |source: &str| -> Vec<String> {
            let resource = fluent_syntax::parser::parse(source).unwrap_or_else(|(r, _)| r);
            let mut ids: Vec<String> = resource
                .body
                .iter()
                .filter_map(|e| match e {
                    ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                    _ => None,
                })
                .collect();
            ids.sort();
            ids
        };
        let (zh_ids, en_ids) = (ids(zh), ids(en));
        for id in &zh_ids {
            assert!(en_ids.contains(id), "en/{en_name} has no message {id}");
        }
        for id in &en_ids {
            assert!(zh_ids.contains(id), "zh-CN/{en_name} has no message {id}");
        }
        for id in &zh_ids {
            assert_eq!(
                variables(zh, id),
                variables(en, id),
                "{en_name}: placeholders of {id} differ between zh-CN and en"
            );
        }
    }
}

#[test]
fn the_check_above_catches_a_missing_message_and_a_changed_placeholder() {
    // The helpers the check relies on, on planted catalogs.
    assert_eq!(variables("a = x { $n }\n", "a"), Some(vec!["n".to_owned()]));
    assert_eq!(variables("a = x { $m }\n", "a"), Some(vec!["m".to_owned()]));
    assert_eq!(variables("a = x\n", "b"), None);
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
